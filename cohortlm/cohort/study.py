"""StudySpec: the one place that names a study's features, endpoints, split and rules.

A study is a YAML file (see ``cohortlm/studies/ra_iorra.yaml``)::

    name: ra_iorra
    version: 1
    id_column: patient_id
    featuriser: ra_visits        # optional
    features:
      - {name: age, type: numeric, unit: years, min: 16, max: 100}
    endpoints:
      - {name: das28_esr_high, column: das28_esr_2y, operator: ">", threshold: 5.1}
    split: {sizes: {train: 9500, validation: 102, test: 2263}, seed: 0}
    rules: [das28_esr_consistent]

A feature or an endpoint may also say how its column looks in the data file
(``column``, coded ``categories``, ``true_values``/``false_values``): see
:mod:`cohortlm.cohort.variables`, which holds the features and endpoints and
checks each entry. This module holds the spec around them, its split, and its
loading.

Loading validates everything; any problem raises :class:`SpecError` naming the
file and the key, so the CLI can exit 2 with one line and no traceback.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlm.cohort.spec_checks import check_keys, check_name, check_number, shown, spec_error
from cohortlm.cohort.subgroups import Subgroup, parse_subgroups
from cohortlm.cohort.variables import Endpoint, Feature, parse_endpoint, parse_feature
from cohortlm.errors import DataError, SpecError
from cohortlm.yamlsafe import load_yaml_file

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
#: the featurisers a spec may name; :data:`cohortlm.cohort.featurise.FEATURISERS` maps each to its
#: function (kept apart so that parsing a spec does not import the featurisers and their pandas code)
FEATURISER_NAMES: tuple[str, ...] = ("ra_visits",)

_TOP_KEYS = {
    "name",
    "version",
    "description",
    "intended_use",
    "id_column",
    "timestamp_column",
    "featuriser",
    "features",
    "endpoints",
    "split",
    "rules",
    "subgroups",
}
_SPLIT_KEYS = {"sizes", "seed"}


@dataclass(frozen=True)
class SplitSpec:
    """Patient-level split sizes (counts or fractions) and the seed."""

    sizes: Mapping[str, float]
    seed: int = 0

    @property
    def is_fraction(self) -> bool:
        """True when sizes are fractions of the cohort rather than counts."""
        return all(float(v) <= 1.0 for v in self.sizes.values()) and any(
            not float(v).is_integer() for v in self.sizes.values()
        )


@dataclass(frozen=True)
class StudySpec:
    """A validated study: features, endpoints, split and rules.

    Build it with :func:`load_study`; the constructor trusts its arguments.
    """

    name: str
    version: int
    id_column: str
    features: tuple[Feature, ...]
    endpoints: tuple[Endpoint, ...]
    split: SplitSpec
    rules: tuple[str, ...] = ()
    featuriser: str | None = None
    timestamp_column: str | None = None
    description: str | None = None
    #: patient subgroups the report shows and the gate checks (:mod:`cohortlm.cohort.subgroups`)
    subgroups: tuple[Subgroup, ...] = ()
    #: what the model is for, in words (the model card's intended use; a default when unset)
    intended_use: str | None = None
    source: str = field(default="<memory>", compare=False)

    @property
    def feature_names(self) -> list[str]:
        """Feature column names in spec order."""
        return [f.name for f in self.features]

    @property
    def endpoint_names(self) -> list[str]:
        """Endpoint names in spec order."""
        return [e.name for e in self.endpoints]

    @property
    def endpoint_columns(self) -> list[str]:
        """Distinct endpoint source columns in spec order."""
        return list(dict.fromkeys(e.column for e in self.endpoints))

    def feature(self, name: str) -> Feature:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, in the YAML layout (optional keys left out when unset)."""
        feats = []
        for f in self.features:
            d = {k: v for k, v in asdict(f).items() if v is not None and k != "category_codes"}
            if f.categories is not None:
                d["categories"] = f.categories_as_written()
            for key in ("true_values", "false_values"):
                if key in d:
                    d[key] = list(d[key])
            feats.append(d)
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "id_column": self.id_column,
            "features": feats,
            "endpoints": [
                {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(e).items() if v is not None}
                for e in self.endpoints
            ],
            "split": {"sizes": dict(self.split.sizes), "seed": self.split.seed},
            "rules": list(self.rules),
        }
        for key in ("featuriser", "timestamp_column", "description", "intended_use"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.subgroups:
            out["subgroups"] = [g.to_dict() for g in self.subgroups]
        return out

    def with_split(self, sizes: Mapping[str, Any], *, source: str = "split override") -> StudySpec:
        """This spec with other split sizes (same seed), checked as the spec's own ``split`` is.

        Raises:
            SpecError: The sizes are not counts or fractions of train, validation and test.
        """
        return replace(self, split=_parse_split(source, {"sizes": dict(sizes), "seed": self.split.seed}))

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical spec content (not of the file's formatting).

        Bundles record it so that a model is never served against a spec that
        names other features or endpoints.
        """
        # Subgroups and the intended use change what is reported, not what a model reads or
        # predicts: not in the hash (a reworded intended use must not make bundles unservable).
        # Nor an endpoint's decision threshold: it moves an operating point, not a prediction.
        content = {k: v for k, v in self.to_dict().items() if k not in ("subgroups", "intended_use")}
        content["endpoints"] = [
            {k: v for k, v in e.items() if k != "decision_threshold"} for e in content["endpoints"]
        ]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def labels(self, table: pd.DataFrame) -> pd.DataFrame:
        """Binary endpoint labels (float, NaN where the source is missing)."""
        self.check_columns(table, need_endpoints=True)
        return pd.DataFrame({e.name: e.label(table[e.column]) for e in self.endpoints}, index=table.index)

    def check_columns(
        self, table: pd.DataFrame, *, need_endpoints: bool = True, what: str = "the data"
    ) -> None:
        """Raise :class:`DataError` if ``table`` lacks a column the spec names."""
        wanted = [self.id_column, *self.feature_names]
        if need_endpoints:
            wanted += self.endpoint_columns
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            mapped = {f.name: f.source_column for f in self.features if f.column}
            named = [f"{c} (column '{mapped[c]}')" if c in mapped else c for c in missing]
            listed = ", ".join(named[:8]) + (" ..." if len(named) > 8 else "")
            raise DataError(
                f"{what} lacks {len(missing)} column(s) named in study '{self.name}' "
                f"({self.source}): {listed}. If the data calls a feature otherwise, map it in the "
                "spec with column: 'its header'; if the column is absent, the fix is in the data."
            )


# ---------------------------------------------------------------------------- loading


def builtin_studies() -> list[str]:
    """Names of the studies shipped in ``cohortlm/studies``."""
    folder = resources.files("cohortlm") / "studies"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_study_path(study: str | Path) -> Path:
    """A path for ``study``: a YAML file, or the name of a built-in study."""
    path = Path(study)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpecError(f"study file {path} does not exist")
        return path
    builtin = resources.files("cohortlm") / "studies" / f"{study}.yaml"
    if builtin.is_file():
        return Path(str(builtin))
    raise SpecError(f"unknown study '{study}': give a YAML file or one of {', '.join(builtin_studies())}")


def load_study(study: str | Path) -> StudySpec:
    """Load and validate a study spec from a file path or built-in name.

    Raises:
        SpecError: the file is missing, not YAML, or breaks a rule; the
            message names the file and the key.
    """
    path = resolve_study_path(study)
    data = load_yaml_file(path, what="study file")
    return study_from_dict(data, source=str(path))


def _parse_split(source: str, raw: Any) -> SplitSpec:
    if not isinstance(raw, Mapping):
        raise spec_error(source, "split", "must be a mapping with sizes and seed")
    check_keys(source, "split.", raw, _SPLIT_KEYS)
    sizes = raw.get("sizes")
    if not isinstance(sizes, Mapping):
        raise spec_error(source, "split.sizes", "must map train, validation and test to counts or fractions")
    check_keys(source, "split.sizes.", sizes, SPLIT_NAMES)
    missing = [s for s in SPLIT_NAMES if s not in sizes]
    if missing:
        raise spec_error(source, f"split.sizes.{missing[0]}", "is required")
    parsed = {s: check_number(source, f"split.sizes.{s}", sizes[s]) for s in SPLIT_NAMES}
    if any(v < 0 for v in parsed.values()):
        raise spec_error(source, "split.sizes", "sizes must not be negative")
    if parsed["train"] <= 0 or parsed["test"] <= 0:
        raise spec_error(source, "split.sizes", "train and test must not be empty")
    spec = SplitSpec(sizes=parsed, seed=0)
    if spec.is_fraction:
        if not math.isclose(sum(parsed.values()), 1.0, abs_tol=1e-9):
            raise spec_error(
                source, "split.sizes", f"fractions must add up to 1, they add up to {sum(parsed.values()):g}"
            )
    elif not all(v.is_integer() for v in parsed.values()):
        raise spec_error(source, "split.sizes", "give either whole counts or fractions that add up to 1")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise spec_error(source, "split.seed", "must be a non-negative integer")
    return SplitSpec(sizes=parsed, seed=seed)


def study_from_dict(data: Any, *, source: str = "<memory>") -> StudySpec:
    """Validate plain data (parsed YAML) into a :class:`StudySpec`.

    Raises:
        SpecError: naming the source and the key that breaks a rule.
    """
    try:
        return _study_from_dict(data, source=source)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # Every key is checked above; this is the net under a check that was forgotten.
        raise SpecError(
            f"{source}: a key holds a value of the wrong kind ({type(exc).__name__}); "
            "compare the file with cohortlm/studies/ra_iorra.yaml"
        ) from None


def _study_from_dict(data: Any, *, source: str) -> StudySpec:
    """The spec from plain data, each key checked in turn: top level, lists, names, the optional keys."""
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: the study must be a YAML mapping with name, features, endpoints and split"
        )
    check_keys(source, "", data, _TOP_KEYS)
    for req in ("name", "id_column", "features", "endpoints", "split"):
        if req not in data:
            raise spec_error(source, req, "is required")
    name = check_name(source, "name", data["name"])
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise spec_error(source, "version", "must be a positive integer")
    id_column = check_name(source, "id_column", data["id_column"])
    raw_features = data["features"]
    if not isinstance(raw_features, list) or not raw_features:
        raise spec_error(source, "features", "must be a non-empty list")
    features = tuple(parse_feature(source, i, f) for i, f in enumerate(raw_features))
    raw_endpoints = data["endpoints"]
    if not isinstance(raw_endpoints, list) or not raw_endpoints:
        raise spec_error(source, "endpoints", "must be a non-empty list")
    endpoints = tuple(parse_endpoint(source, i, e) for i, e in enumerate(raw_endpoints))
    _check_column_names(source, id_column, features, endpoints)
    timestamp_column = data.get("timestamp_column")
    if timestamp_column is not None:
        check_name(source, "timestamp_column", timestamp_column)
    featuriser = _parse_featuriser(source, data.get("featuriser"))
    rules = _parse_rules(source, data.get("rules") or [])
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise spec_error(source, "description", "must be a string")
    intended_use = data.get("intended_use")
    if intended_use is not None and (not isinstance(intended_use, str) or not intended_use.strip()):
        raise spec_error(source, "intended_use", "must be a non-empty text saying what the model is for")
    return StudySpec(
        name=name,
        version=version,
        id_column=id_column,
        features=features,
        endpoints=endpoints,
        split=_parse_split(source, data["split"]),
        rules=tuple(rules),
        featuriser=featuriser,
        timestamp_column=timestamp_column,
        description=description,
        subgroups=parse_subgroups(source, data.get("subgroups"), features),
        intended_use=intended_use.strip() if intended_use is not None else None,
        source=source,
    )


def _check_column_names(
    source: str, id_column: str, features: tuple[Feature, ...], endpoints: tuple[Endpoint, ...]
) -> None:
    """One name per feature and endpoint, one column per input, and no input that is also an outcome."""
    seen: dict[str, str] = {id_column: "id_column"}
    for f in features:
        if f.name in seen:
            raise spec_error(
                source, f"features[{f.name}].name", f"duplicate name (also used by {seen[f.name]})"
            )
        seen[f.name] = f"features[{f.name}]"
    for f in features:
        if f.column is not None and f.column != f.name:
            if f.column in seen:
                raise spec_error(
                    source,
                    f"features[{f.name}].column",
                    f"'{f.column}' is also {seen[f.column]}; one column feeds one feature",
                )
            seen[f.column] = f"features[{f.name}].column"
    ep_seen: set[str] = set()
    for e in endpoints:
        if e.name in ep_seen:
            raise spec_error(source, f"endpoints[{e.name}].name", "duplicate endpoint name")
        ep_seen.add(e.name)
        if e.column in seen:
            raise spec_error(
                source,
                f"endpoints[{e.name}].column",
                f"the outcome column is also {seen[e.column]}: an input must not be the outcome",
            )


def _parse_featuriser(source: str, featuriser: Any) -> Any:
    """The featuriser's name, one of :data:`FEATURISER_NAMES`, or None."""
    if featuriser is not None and (not isinstance(featuriser, str) or featuriser not in FEATURISER_NAMES):
        raise spec_error(
            source,
            "featuriser",
            f"unknown featuriser {shown(featuriser)}; known: {', '.join(FEATURISER_NAMES)}",
        )
    return featuriser


def _parse_rules(source: str, rules: Any) -> list[str]:
    """The rule names, each one of :data:`cohortlm.cohort.rules.RULES`."""
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise spec_error(source, "rules", "must be a list of rule names")
    from cohortlm.cohort.rules import RULES

    for r in rules:
        if r not in RULES:
            raise spec_error(source, "rules", f"unknown rule {shown(r)}; known: {', '.join(sorted(RULES))}")
    return rules
