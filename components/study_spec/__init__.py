"""KFP component: study_spec."""

from components.study_spec.component import study_spec

__all__ = ["study_spec"]
