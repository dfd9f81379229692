"""The KServe model server for cohortlm bundles.

``serving.model.CohortModel`` is the ``kserve.Model``; ``serving.server`` starts
it (``cohortlm serve``); ``serving.isvc`` builds and rolls out the
InferenceService on a cluster; ``serving.validation`` checks requests against
the study spec; ``serving.metrics`` defines the server's Prometheus metrics.
The domain core (``cohortlm``) never imports this package.
"""
