"""The checks every part of a study spec shares, and the error they raise.

Each check takes the spec's ``source`` (its file, or ``<memory>``) and the key
it reads, so that a :class:`SpecError` names both: ``study.yaml: split.seed:
must be a non-negative integer``. The CLI shows that one line and exits 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cohortlm.errors import SpecError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def spec_error(source: str, key: str, msg: str) -> SpecError:
    """The error for ``key`` of the spec read from ``source``."""
    return SpecError(f"{source}: {key}: {msg}")


def shown(value: Any) -> str:
    """A value for a message: a short string quoted, anything else by its kind (never a dump)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    kinds = {list: "a list", dict: "a mapping", bool: "true/false", type(None): "nothing"}
    for kind, text in kinds.items():
        if isinstance(value, kind):
            return text
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


def check_keys(source: str, where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse the first key of ``data`` (``where`` prefixes it) that is not ``allowed``."""
    extra = sorted((k for k in data if k not in set(allowed)), key=str)
    if extra:
        raise spec_error(
            source,
            f"{where}{extra[0]}",
            f"unknown key; allowed keys are {', '.join(sorted(allowed))}",
        )


def check_name(source: str, key: str, value: Any) -> str:
    """``value`` if it is a lower snake_case name."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise spec_error(source, key, "must be a lower snake_case name such as 'das28_esr'")
    return value


def check_number(source: str, key: str, value: Any) -> float:
    """``value`` as a float if it is a finite number (true/false is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise spec_error(source, key, "must be a finite number")
    return float(value)
