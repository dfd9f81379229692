"""Request checks against the study spec, before any row reaches the model.

Both protocols end in the same place: a DataFrame with the spec's feature
columns (numeric as float, categorical as text, NaN/None for missing). Each
value is checked against its feature's rule:

==============  =========================================================
``missing``     absent or null, for a feature that may not be missing
                (``max_missing`` of 0 in the spec)
``type``        not a number / not an integer / not 0 or 1 / not text
``range``       outside the spec's ``[min, max]``
``categories``  not one of the spec's categories
``unknown``     a field the spec does not name
==============  =========================================================

A :class:`RequestError` names where (``instances[2].age``), the field and the
rule; it never includes the value that broke it, so that a patient's data does
not reach an error response or a log line. This module does not import kserve.

The V2 request ``id`` is the one thing of a request that comes back unchanged:
the protocol has every answer (REST and gRPC) echo it. It must be an opaque
request id (a UUID), never a patient's identifier (docs/platform.md). The server
cannot tell every identifier from an opaque id, and does not guess; it refuses
(:meth:`RequestSchema.check_request_id`) the case it can tell for certain, an id
equal to a patient id carried by the same request, and ids over
:data:`MAX_REQUEST_ID` characters. The id is never logged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.study import StudySpec

# A lookup turns patient ids into stored feature rows (None where a patient is
# not in the store); the Feast online store provides one.
FeatureLookup = Callable[[Sequence[str]], list[dict[str, Any] | None]]
# Checked values per feature: float arrays (NaN = missing) or object arrays of text (None = missing).
Columns = dict[str, np.ndarray]

_FLOAT_TYPES = ("FP16", "FP32", "FP64")
_INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_V2_DATATYPES = frozenset({*_FLOAT_TYPES, *_INT_TYPES, "BOOL", "BYTES"})
#: The longest V2 request id accepted (a UUID has 36 characters).
MAX_REQUEST_ID = 128


class FeatureStoreError(RuntimeError):
    """The feature store could not answer a lookup (a server-side failure, not the request's fault)."""


class RequestError(ValueError):
    """A request broke a rule of the spec; the message names the field and the rule, never the value."""

    def __init__(self, where: str, rule: str, text: str):
        self.where = where
        self.rule = rule
        super().__init__(f"{where}: {text} (rule: {rule})")


@dataclass(frozen=True)
class FeatureRule:
    """What a feature's values must satisfy, compiled from the spec once."""

    name: str
    type: str
    lo: float | None
    hi: float | None
    categories: frozenset[str] | None
    nullable: bool

    @property
    def range_text(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"[{lo}, {hi}]"


class RequestSchema:
    """The spec's features as rules, and the conversion of V1 and V2 requests into rows.

    Args:
        spec: the study the served model was trained for.
        max_batch: the largest number of instances one request may carry.
    """

    def __init__(self, spec: StudySpec, *, max_batch: int = 1024):
        self.spec = spec
        self.max_batch = max_batch
        self.id_column = spec.id_column
        self.rules = [
            FeatureRule(
                name=f.name,
                type=f.type,
                lo=f.min,
                hi=f.max,
                categories=frozenset(f.categories) if f.categories is not None else None,
                nullable=f.max_missing > 0,
            )
            for f in spec.features
        ]
        self._by_name = {r.name: r for r in self.rules}
        self.feature_names = [r.name for r in self.rules]

    # ------------------------------------------------------------------ one value

    def check_value(self, rule: FeatureRule, value: Any, where: str) -> Any:
        """The value as the model wants it (float, or str for categorical); raise on a broken rule."""
        field = f"{where}.{rule.name}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if rule.nullable:
                return None if rule.type == "categorical" else math.nan
            raise RequestError(field, "missing", "is required")
        if rule.type == "categorical":
            if not isinstance(value, str):
                raise RequestError(field, "type", "must be text")
            if rule.categories is not None and value not in rule.categories:
                allowed = ", ".join(sorted(rule.categories))
                raise RequestError(field, "categories", f"must be one of {allowed}")
            return value
        if isinstance(value, bool):
            if rule.type == "binary":
                return float(value)
            raise RequestError(field, "type", "must be a number, not true/false")
        if not isinstance(value, (int, float)):
            kind = {"binary": "0 or 1", "integer": "an integer"}.get(rule.type, "a number")
            raise RequestError(field, "type", f"must be {kind}")
        x = float(value)
        if not math.isfinite(x):
            raise RequestError(field, "type", "must be a finite number")
        if rule.type == "binary":
            if x not in (0.0, 1.0):
                raise RequestError(field, "type", "must be 0 or 1")
            return x
        if rule.type == "integer" and not x.is_integer():
            raise RequestError(field, "type", "must be an integer")
        if (rule.lo is not None and x < rule.lo) or (rule.hi is not None and x > rule.hi):
            raise RequestError(field, "range", f"must lie in {rule.range_text}")
        return x

    # ------------------------------------------------------------------ V1

    def rows_from_instances(self, instances: Any, *, lookup: FeatureLookup | None = None) -> pd.DataFrame:
        """Rows from V1 ``instances``: a list of objects, each all features or only the patient id.

        Raises:
            RequestError: the request breaks a rule; nothing was predicted.
        """
        return self.frame(self.columns_from_instances(instances, lookup=lookup))

    def columns_from_instances(self, instances: Any, *, lookup: FeatureLookup | None = None) -> Columns:
        """Like :meth:`rows_from_instances`, as checked columns (no DataFrame built: the hot path)."""
        if not isinstance(instances, list) or not instances:
            raise RequestError("instances", "type", "must be a non-empty list of objects")
        if len(instances) > self.max_batch:
            raise RequestError("instances", "batch", f"must hold at most {self.max_batch} instances")
        for i, inst in enumerate(instances):
            if not isinstance(inst, Mapping):
                raise RequestError(f"instances[{i}]", "type", "must be an object of feature: value")
        by_id = [i for i, inst in enumerate(instances) if set(inst) == {self.id_column}]
        stored: dict[int, Mapping[str, Any]] = {}
        if by_id:
            stored = self._lookup([instances[i][self.id_column] for i in by_id], by_id, lookup)
        columns: dict[str, list[Any]] = {name: [] for name in self.feature_names}
        for i, inst in enumerate(instances):
            where = f"instances[{i}]"
            values = stored.get(i, inst)
            for k, key in enumerate(inst):
                if key not in self._by_name and key != self.id_column:
                    # Never the key's text: a key can be a value (an id pasted as a field name).
                    raise RequestError(
                        where,
                        "unknown",
                        f"has an unknown field (field {k + 1} of {len(inst)}); "
                        "send only the features the model names (GET /v2/models/<name> lists them)",
                    )
            for rule in self.rules:
                columns[rule.name].append(self.check_value(rule, values.get(rule.name), where))
        return self._arrays(columns)

    def _lookup(
        self, ids: list[Any], positions: list[int], lookup: FeatureLookup | None
    ) -> dict[int, Mapping[str, Any]]:
        if lookup is None:
            raise RequestError(
                f"instances[{positions[0]}].{self.id_column}",
                "lookup",
                "a request with only the patient id needs a feature store; send the features, "
                "or start the server with --feature-repo",
            )
        for pos, pid in zip(positions, ids, strict=True):
            if not isinstance(pid, (str, int)) or isinstance(pid, bool):
                raise RequestError(f"instances[{pos}].{self.id_column}", "type", "must be text or an integer")
        try:
            found = lookup([str(p) for p in ids])
        except Exception as exc:  # its message could quote the ids
            raise FeatureStoreError(f"feature store lookup failed ({type(exc).__name__})") from None
        out: dict[int, Mapping[str, Any]] = {}
        for pos, row in zip(positions, found, strict=True):
            if row is None or all(row.get(n) is None for n in self.feature_names):
                raise RequestError(
                    f"instances[{pos}].{self.id_column}",
                    "lookup",
                    "has no stored features in the feature store",
                )
            out[pos] = row
        return out

    # ------------------------------------------------------------------ V2

    def rows_from_tensors(
        self,
        tensors: Mapping[str, Callable[[], np.ndarray]],
        datatypes: Mapping[str, str],
        *,
        lookup: FeatureLookup | None = None,
    ) -> pd.DataFrame:
        """Rows from V2 inputs (see :meth:`columns_from_tensors`)."""
        return self.frame(self.columns_from_tensors(tensors, datatypes, lookup=lookup))

    def check_request_id(self, request_id: Any, tensors: Mapping[str, Callable[[], np.ndarray]]) -> None:
        """Refuse a V2 request id that the answer would echo but must not (module docstring).

        Raises:
            RequestError: the id is over :data:`MAX_REQUEST_ID` characters, or equals one of
                the patient ids the request carries in its id column (never quoted).
        """
        if request_id is None or request_id == "":
            return
        text = str(request_id)
        if len(text) > MAX_REQUEST_ID:
            raise RequestError(
                "id", "size", f"must be at most {MAX_REQUEST_ID} characters (an opaque id, e.g. a UUID)"
            )
        decode = tensors.get(self.id_column)
        if decode is None:
            return
        try:
            values = np.asarray(decode()).ravel().tolist()
        except Exception:
            return  # the tensor's own check reports it
        ids = {v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values}
        if text in ids or text.strip() in ids:
            raise RequestError(
                "id",
                "identifier",
                f"must not be a patient identifier (it equals a value of inputs[{self.id_column}]); "
                "the id is echoed in the answer: use an opaque request id such as a UUID",
            )

    def columns_from_tensors(
        self,
        tensors: Mapping[str, Callable[[], np.ndarray]],
        datatypes: Mapping[str, str],
        *,
        lookup: FeatureLookup | None = None,
    ) -> Columns:
        """Checked columns from V2 inputs: one tensor per feature, shape ``[n]`` or ``[n, 1]``.

        Args:
            tensors: input name -> a function that decodes the tensor (decoding
                is deferred so that a failure is reported against its name).
            datatypes: input name -> V2 datatype (``FP64``, ``INT64``, ``BOOL``, ``BYTES``...).
            lookup: the feature store lookup, for a request with only the patient id tensor.

        Raises:
            RequestError: the request breaks a rule; nothing was predicted.
        """
        for i, name in enumerate(tensors):
            if name not in self._by_name and name != self.id_column:
                raise RequestError(
                    f"inputs[{i}].name",
                    "unknown",
                    "is not a feature of this model (GET /v2/models/<name> lists the inputs)",
                )
        arrays: dict[str, np.ndarray] = {}
        for name, decode in tensors.items():
            try:
                arr = np.asarray(decode())
            except Exception:  # numpy's message would quote the offending value
                datatype = datatypes.get(name, "")
                shown = datatype if datatype in _V2_DATATYPES else "its datatype"
                raise RequestError(f"inputs[{name}]", "type", f"could not be decoded as {shown}") from None
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise RequestError(f"inputs[{name}]", "shape", "must have shape [n] or [n, 1]")
            arrays[name] = arr
        sizes = {len(a) for a in arrays.values()}
        if not arrays or 0 in sizes:
            raise RequestError("inputs", "missing", "must hold one non-empty tensor per feature")
        if len(sizes) > 1:
            raise RequestError("inputs", "shape", "all input tensors must have the same batch size")
        n = sizes.pop()
        if n > self.max_batch:
            raise RequestError("inputs", "batch", f"must hold at most {self.max_batch} instances")
        if set(arrays) == {self.id_column}:
            try:
                ids = [
                    v.decode("utf-8") if isinstance(v, bytes) else v for v in arrays[self.id_column].tolist()
                ]
            except UnicodeDecodeError:
                raise RequestError(f"inputs[{self.id_column}]", "type", "must be UTF-8 text") from None
            instances = [{self.id_column: pid} for pid in ids]
            return self.columns_from_instances(instances, lookup=lookup)
        columns: dict[str, list[Any]] = {}
        for rule in self.rules:
            if rule.name not in arrays:
                if not rule.nullable:
                    raise RequestError(f"inputs[{rule.name}]", "missing", "is required")
                columns[rule.name] = [None if rule.type == "categorical" else math.nan] * n
                continue
            columns[rule.name] = self._check_tensor(rule, arrays[rule.name], datatypes.get(rule.name, ""))
        return self._arrays(columns)

    def _check_tensor(self, rule: FeatureRule, arr: np.ndarray, datatype: str) -> list[Any]:
        where = f"inputs[{rule.name}]"
        if rule.type == "categorical":
            if datatype != "BYTES":
                raise RequestError(where, "type", "must be a BYTES tensor of text")
            try:
                values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in arr.tolist()]
            except UnicodeDecodeError:
                raise RequestError(where, "type", "must be UTF-8 text") from None
            # V2 has no null: an empty string stands for a missing value.
            return [
                self.check_value(rule, v if v != "" else None, f"inputs[{i}]") for i, v in enumerate(values)
            ]
        if datatype not in (*_FLOAT_TYPES, *_INT_TYPES, "BOOL"):
            raise RequestError(where, "type", "must be a numeric or BOOL tensor")
        if datatype == "BOOL" and rule.type != "binary":
            raise RequestError(where, "type", "must be a number, not BOOL")
        x = arr.astype(float)
        missing = np.isnan(x)
        if missing.any() and not rule.nullable:
            raise RequestError(where, "missing", "is required (NaN given)")
        ok = x[~missing]
        if not np.isfinite(ok).all():
            raise RequestError(where, "type", "must hold finite numbers")
        if rule.type == "binary" and not np.isin(ok, (0.0, 1.0)).all():
            raise RequestError(where, "type", "must hold 0 or 1")
        if rule.type == "integer" and not (ok == np.round(ok)).all():
            raise RequestError(where, "type", "must hold integers")
        if (rule.lo is not None and (ok < rule.lo).any()) or (rule.hi is not None and (ok > rule.hi).any()):
            raise RequestError(where, "range", f"values must lie in {rule.range_text}")
        return x.tolist()

    # ------------------------------------------------------------------ shared

    def _arrays(self, columns: dict[str, list[Any]]) -> Columns:
        return {
            rule.name: np.array(columns[rule.name], dtype=object if rule.type == "categorical" else float)
            for rule in self.rules
        }

    def frame(self, columns: Columns) -> pd.DataFrame:
        """The checked columns as the DataFrame a :class:`cohortlm.models.bundle.Predictor` takes."""
        return pd.DataFrame(columns, columns=self.feature_names)

    def example_row(self) -> dict[str, Any]:
        """A valid synthetic row built from the spec alone (for the self-check; no patient's data)."""
        row: dict[str, Any] = {}
        for rule in self.rules:
            if rule.type == "categorical":
                row[rule.name] = sorted(rule.categories or {"unknown"})[0]
            elif rule.type == "binary":
                row[rule.name] = 0
            else:
                lo = rule.lo if rule.lo is not None else 0.0
                hi = rule.hi if rule.hi is not None else lo + 1.0
                mid = (lo + hi) / 2
                row[rule.name] = round(mid) if rule.type == "integer" else mid
        return row
