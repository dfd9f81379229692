"""What the model server answers, defined once from the study spec and rendered for each protocol.

Per endpoint of the study (in the spec's order) the server answers two outputs:

========================  =========  =====  ==================  ====================================
output                    V2 type    shape  V1 key              meaning
========================  =========  =====  ==================  ====================================
``<endpoint>``            FP64       [n]    ``predictions``     the probability
``<endpoint>_decision``   BOOL       [n]    ``decisions``       probability >= the endpoint's threshold
========================  =========  =====  ==================  ====================================

:class:`OutputSchema` holds that table for one spec; the V1 body
(:meth:`OutputSchema.v1_rows`), the V2 response tensors, REST and gRPC alike
(:meth:`OutputSchema.v2_outputs`), and the V2 model metadata
(:meth:`OutputSchema.metadata`) are all derived from it, so that the three can
never disagree on a name, a type or an order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput

__all__ = ["DECISION", "KINDS", "PROBABILITY", "OutputKind", "OutputSchema", "OutputTensor"]


@dataclass(frozen=True)
class OutputKind:
    """One kind of per-endpoint output: how it is named, typed and written in V1 and V2."""

    suffix: str  # appended to the endpoint name to name the V2 tensor
    datatype: str  # the V2 datatype
    v1_key: str  # the V1 body's key holding one {endpoint: value} dict per instance
    scalar: Callable[[Any], Any]  # numpy scalar -> the JSON value written in V1


PROBABILITY = OutputKind(suffix="", datatype="FP64", v1_key="predictions", scalar=float)
DECISION = OutputKind(suffix="_decision", datatype="BOOL", v1_key="decisions", scalar=bool)
#: The outputs of every endpoint, in the order they are answered.
KINDS = (PROBABILITY, DECISION)


@dataclass(frozen=True)
class OutputTensor:
    """One output: the endpoint it belongs to and its kind."""

    endpoint: str
    kind: OutputKind

    @property
    def name(self) -> str:
        return f"{self.endpoint}{self.kind.suffix}"

    @property
    def datatype(self) -> str:
        return self.kind.datatype


@dataclass(frozen=True)
class OutputSchema:
    """The outputs for a study's endpoints: a probability and a decision per endpoint."""

    endpoints: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: Any) -> OutputSchema:
        """The schema of a study spec (its ``endpoint_names``, in order)."""
        return cls(tuple(spec.endpoint_names))

    @property
    def tensors(self) -> tuple[OutputTensor, ...]:
        """Every output in answer order: per endpoint, its probability then its decision."""
        return tuple(OutputTensor(e, kind) for e in self.endpoints for kind in KINDS)

    def metadata(self) -> list[dict[str, Any]]:
        """The V2 metadata's ``outputs`` (any batch size: shape ``[-1]``)."""
        return [{"name": t.name, "datatype": t.datatype, "shape": [-1]} for t in self.tensors]

    def _columns(self, proba: np.ndarray, decisions: np.ndarray) -> dict[OutputKind, np.ndarray]:
        return {PROBABILITY: proba, DECISION: decisions}

    def v2_outputs(self, proba: np.ndarray, decisions: np.ndarray) -> list[InferOutput]:
        """The V2 response tensors (REST and gRPC) for ``n`` rows: columns in endpoint order."""
        n = proba.shape[0]
        columns = self._columns(proba, decisions)
        index = {e: j for j, e in enumerate(self.endpoints)}
        return [
            InferOutput(
                name=t.name,
                shape=[n],
                datatype=t.datatype,
                data=columns[t.kind][:, index[t.endpoint]].tolist(),
            )
            for t in self.tensors
        ]

    def v1_rows(self, proba: np.ndarray, decisions: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """The V1 body's per-instance lists: ``{"predictions": [...], "decisions": [...]}``."""
        columns = self._columns(proba, decisions)
        return {kind.v1_key: [self._row(kind, row) for row in columns[kind]] for kind in KINDS}

    def _row(self, kind: OutputKind, row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.endpoints, map(kind.scalar, row), strict=True))
