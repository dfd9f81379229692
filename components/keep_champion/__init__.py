"""KFP component: keep_champion."""

from components.keep_champion.component import keep_champion

__all__ = ["keep_champion"]
