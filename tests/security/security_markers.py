"""The planted markers of the bad-input corpus and the fuzz test, and the check for them."""

from __future__ import annotations

PLANT_VALUE = "987654.321"
PLANT_ID = "ZZPHI4242"
PLANTED = (PLANT_VALUE, PLANT_ID, "987654")


def leaks(text: str | bytes) -> list[str]:
    """The planted markers found in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [p for p in PLANTED if p in text]
