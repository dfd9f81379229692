from components.report_run_outcome.component import report_run_outcome

__all__ = ["report_run_outcome"]
