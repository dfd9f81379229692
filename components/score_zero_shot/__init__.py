"""KFP component: score_zero_shot."""

from components.score_zero_shot.component import score_zero_shot

__all__ = ["score_zero_shot"]
