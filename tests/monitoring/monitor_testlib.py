"""Helpers of the monitoring tests: instances from a featurised table, and the log fed in process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def instances(table: pd.DataFrame, spec: Any, *, with_id: bool = True) -> list[dict[str, Any]]:
    """V1 instances (features, and the id column beside them) from a featurised table."""
    cols = [f.name for f in spec.features] + ([spec.id_column] if with_id else [])
    sub = table[cols].astype(object)
    sub = sub.where(sub.notna(), None)
    out = sub.to_dict("records")
    for inst in out:
        for k, v in inst.items():
            if isinstance(v, np.generic):
                inst[k] = v.item()
    return out
