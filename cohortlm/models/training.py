"""The figures a fine-tune reports, typed: one name per figure, where it is written and where it is read.

``train_qlora`` writes them into ``bundle.json`` (``training``), the train step's
component logs them as KFP Metrics, and the gate's outcome carries them to the
Pushgateway export. A misspelt key once kept ``cohortlm_training_tokens_per_second``
from ever being pushed (the writer said ``tokens_per_s``, the reader
``tokens_per_second``); reading through :class:`TrainingFigures` makes such a
mismatch an attribute error, not a silent ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cohortlm.models.bundle import read_bundle_metadata

__all__ = ["TrainingFigures"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


@dataclass(frozen=True)
class TrainingFigures:
    """What a fine-tune measured, each with its unit in the name.

    Attributes:
        tokens_per_s: Training throughput over the training loop (tokens per second).
        train_seconds: Wall time of the training loop (s), frozen trunk excluded.
        trunk_seconds: Wall time of computing the frozen trunk's states (s).
        peak_memory_mib: Peak memory (MiB): CUDA allocated on a GPU, resident set on a CPU.
        steps: Optimiser steps of the run (resumed runs included).
        resumed_from_step: The step a resumed run started from (0 for a fresh run).
        n_train: Training patients.
        first_loss: Loss of the first step of this run.
        final_loss: Loss of the last step.
        losses: Loss per step of this run.
    """

    tokens_per_s: float | None = None
    train_seconds: float | None = None
    trunk_seconds: float | None = None
    peak_memory_mib: float | None = None
    steps: int | None = None
    resumed_from_step: int = 0
    n_train: int | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    losses: tuple[float, ...] = field(default_factory=tuple)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrainingFigures:
        """From a bundle's ``training`` record (non-numbers and non-finite values become None)."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            value = record.get(f.name)
            if f.name == "losses":
                kw[f.name] = tuple(float(v) for v in (value or ()) if _number(v) is not None)
            elif f.name in ("steps", "n_train", "resumed_from_step"):
                number = _number(value)
                kw[f.name] = (
                    int(number) if number is not None else (0 if f.name == "resumed_from_step" else None)
                )
            else:
                kw[f.name] = _number(value)
        return cls(**kw)

    @classmethod
    def from_bundle(cls, path: str | Path) -> TrainingFigures:
        """The figures in a bundle's ``bundle.json`` (all None for a bundle not trained here)."""
        return cls.from_record(read_bundle_metadata(path).get("training") or {})

    def scalars(self) -> dict[str, float]:
        """Every figure that is a number (no losses), for KFP Metrics and metric exports."""
        return {
            k: float(v)
            for k, v in asdict(self).items()
            if k != "losses" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }

    def loss_curve(self, *, points: int = 200) -> list[tuple[int, float]]:
        """``(step, loss)`` pairs, thinned to about ``points`` (a UI draws no more)."""
        stride = max(1, -(-len(self.losses) // points))
        return [(self.resumed_from_step + i + 1, self.losses[i]) for i in range(0, len(self.losses), stride)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, which :meth:`from_record` reads back equal."""
        out = asdict(self)
        out["losses"] = list(self.losses)
        return out
