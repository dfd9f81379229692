"""cohortlm: turn a clinical cohort into a served, monitored prediction model.

The domain core. It never imports kfp, kserve or feast: components, pipelines,
serving and feature_repo import it, never the other way round.
"""

__version__ = "0.1.0"
