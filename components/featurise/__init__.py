"""KFP component: featurise."""

from components.featurise.component import featurise

__all__ = ["featurise"]
