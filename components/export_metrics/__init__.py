"""KFP component: export_metrics."""

from components.export_metrics.component import export_metrics

__all__ = ["export_metrics"]
