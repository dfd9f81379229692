"""KFP components: gate_endpoints and endpoint_metrics (the KFP UI's per-endpoint curves)."""

from components.endpoint_metrics.component import endpoint_metrics, gate_endpoints

__all__ = ["endpoint_metrics", "gate_endpoints"]
