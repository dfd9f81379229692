"""Monitoring a served champion: the pure statistics, no database, server or cluster code.

* :mod:`cohortlm.monitoring.bins`: the fixed bins, derived from the study spec alone,
  in which the server counts each feature's served values (aggregated counts, no row);
* :mod:`cohortlm.monitoring.drift`: small-bin merging, the population stability index
  and a chi-square test per feature;
* :mod:`cohortlm.monitoring.performance`: live AUC with its DeLong interval, calibration,
  O/E and Brier against the figures the gate recorded at promotion, the significance of
  a drop, and the expected AUC before outcomes (CBPE).

The database, the server hook, the CLI and the retraining submission live in
``serving.prediction_log`` and ``serving.monitor_cli``.
"""
