"""The ``study_spec`` component (``components/study_spec/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import pytest
import yaml
from flat_cohort import hf_study
from kfp.dsl import Artifact

from cohortlm.errors import SpecError
from components.study_spec.component import study_spec


def test_study_spec_names_the_study_in_its_metadata(chain):
    from cohortlm.cohort.study import study_from_dict

    spec = study_from_dict(hf_study())
    assert chain.study.metadata == {"study": "hf_readmission", "version": 2, "spec_hash": spec.spec_hash}
    assert chain.study_spec.spec_hash == spec.spec_hash


def test_study_spec_refuses_a_bad_spec(tmp_path):
    bad = hf_study()
    del bad["id_column"]
    out = Artifact(uri=str(tmp_path / "spec.yaml"))
    with pytest.raises(SpecError, match="id_column"):
        study_spec.python_func(study_yaml=yaml.safe_dump(bad), spec=out)
    assert out.metadata == {} and not (tmp_path / "spec.yaml").exists()
