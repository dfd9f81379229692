"""How a cell compares to a value a study spec declares (``1 == 1.0 == "1"``, ``Yes`` == ``yes``).

Both the spec (which refuses a value that is both true and false) and the
conformer (which maps a file's cells) need the same comparison; it lives here,
below both, so neither has to import the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_TRUE_WORDS = ("yes", "true", "on")
_FALSE_WORDS = ("no", "false", "off")


def value_key(value: Any) -> tuple[str, Any] | None:
    """A comparable key for one cell: numbers by value (1 == 1.0 == "1"), text case-folded, bools apart.

    None for a missing value. Bools stay apart from numbers (Python's ``True == 1``
    would otherwise merge them in a dict).
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("n", float(value))
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else ("n", float(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return ("s", text.casefold())
        return ("n", number) if math.isfinite(number) else ("s", text.casefold())
    return ("s", str(value).strip().casefold())


def declared_keys(values: Iterable[Any]) -> set[tuple[str, Any]]:
    """The keys a spec's true_values or false_values match.

    YAML reads unquoted yes/no/true/false/on/off as booleans, so a boolean
    stands for all three words as well as for a true/false cell.
    """
    keys: set[tuple[str, Any]] = set()
    for v in values:
        if isinstance(v, bool):
            keys.add(("b", v))
            keys.update(("s", w) for w in (_TRUE_WORDS if v else _FALSE_WORDS))
        else:
            key = value_key(v)
            if key is not None:
                keys.add(key)
    return keys
