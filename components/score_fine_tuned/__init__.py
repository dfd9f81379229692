"""KFP component: score_fine_tuned."""

from components.score_fine_tuned.component import score_fine_tuned

__all__ = ["score_fine_tuned"]
