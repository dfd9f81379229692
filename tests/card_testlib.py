"""A promoted bundle with a model card, from a small flat study with planted patient values.

Shared by the model-card tests (tests/models) and the served-metadata tests (tests/serving):
the planted values are one patient's id, age and baseline date that no honest output holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from flat_cohort import flat_cohort, hf_study
from steplib import fake_scores, lenient_policy_text

# Values no honest report could contain by chance: one patient's id, age and baseline date.
PLANTED_ID = "ZQXPLANT7731"
PLANTED_AGE = 88.8888
PLANTED_DATE = "1931-03-17"
PLANTED = (PLANTED_ID, "88.8888", "88.889", "1931")


@dataclass
class Promoted:
    run: Path
    store: Path
    bundle: Path
    outcome: object
    keys: tuple[Path, Path]


def promote_planted_study(root: Path) -> Promoted:
    """A small flat study with planted values, through every step to a signed promotion (~10 s)."""
    import os

    import numpy as np

    from cohortlm.cohort.study import load_study
    from cohortlm.models.bundle import generate_signing_key
    from cohortlm.run import steps
    from cohortlm.store.registry import champion

    data = flat_cohort(n=300, seed=3)
    rng = np.random.default_rng(3)
    data["index_date"] = (
        np.datetime64("2015-01-01") + rng.integers(0, 3 * 365, len(data)).astype("timedelta64[D]")
    ).astype(str)
    data.loc[7, ["subject", "age", "index_date"]] = [PLANTED_ID, PLANTED_AGE, PLANTED_DATE]
    data.to_csv(root / "hf.csv", index=False)
    study = hf_study()
    study["timestamp_column"] = "index_date"
    steps.study_step(yaml.safe_dump(study), str(root / "study.yaml"))
    spec = load_study(root / "study.yaml")
    steps.featurise_step(str(root / "hf.csv"), spec, str(root / "cohort.parquet"))
    steps.split_step(str(root / "cohort.parquet"), spec, str(root / "split.parquet"))
    steps.train_baseline_step(
        str(root / "split.parquet"), spec, str(root / "baseline"), str(root / "baseline.parquet")
    )
    fake_scores(root / "split.parquet", spec, root / "tiny.parquet", quality="noise", seed=1)
    fake_scores(root / "split.parquet", spec, root / "ft.parquet", quality="noise", seed=2)
    policy = root / "policy.yaml"
    policy.write_text(lenient_policy_text())
    scores = {
        "baseline": str(root / "baseline.parquet"),
        "tiny": str(root / "tiny.parquet"),
        "tiny+qlora": str(root / "ft.parquet"),
    }
    run = root / "run"
    outcome = steps.evaluate_step(
        str(root / "split.parquet"), spec, scores, str(run), policy_path=str(policy), profile="smoke"
    )
    keys = (root / "signing.pem", root / "verify.pem")
    generate_signing_key(*keys)
    store = root / "store"
    saved = os.environ.get("COHORTLM_SIGNING_KEY")
    os.environ["COHORTLM_SIGNING_KEY"] = str(keys[0])
    try:
        steps.promote_step(str(root / "baseline"), str(store), outcome)
    finally:
        if saved is None:
            os.environ.pop("COHORTLM_SIGNING_KEY")
        else:
            os.environ["COHORTLM_SIGNING_KEY"] = saved
    bundle = champion(store, spec.name)
    assert bundle is not None
    return Promoted(run=run, store=store, bundle=Path(bundle), outcome=outcome, keys=keys)
