"""KFP component: monitor."""

from components.monitor.component import monitor

__all__ = ["monitor"]
