"""KFP component: split."""

from components.split.component import split

__all__ = ["split"]
