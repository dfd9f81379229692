"""KFP component: validate."""

from components.validate.component import validate

__all__ = ["validate"]
