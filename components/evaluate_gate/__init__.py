"""KFP component: evaluate_gate."""

from components.evaluate_gate.component import evaluate_gate

__all__ = ["evaluate_gate"]
