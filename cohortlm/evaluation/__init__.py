"""Evaluation: per-endpoint metrics, paired DeLong comparisons, the promotion gate and the report.

``stats`` is the statistics (DeLong, Holm, calibration, simulation) and imports
nothing else of cohortlm; ``evaluate`` scores models on a split, ``comparisons``
builds the comparison families, ``gates`` decides, ``report``/``figures``/
``report_html`` render what was decided.
"""
