"""KFP component: train_baseline."""

from components.train_baseline.component import train_baseline

__all__ = ["train_baseline"]
