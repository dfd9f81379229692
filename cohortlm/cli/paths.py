"""Output paths checked before a command does any work: exit 2 naming the option and the path.

A command that trains for minutes and then fails to write its result wastes the
minutes; these checks run first. Nothing is created here: the command creates
its folders when it writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cohortlm.errors import UsageError


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a real probe: permissions alone say yes to root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_parent(path: Path, option: str) -> None:
    # The folder the file goes in (an existing file is overwritten: its folder is what matters).
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise UsageError(f"{option} {path}: {anchor} is a file, not a folder; choose another path")
    if not _writable(anchor):
        raise UsageError(f"{option} {path}: {anchor} is not writable; choose another path")


def check_output_dir(path: Path, option: str) -> None:
    """Raise UsageError unless ``path`` is (or can become) a writable folder."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder")
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise UsageError(f"{option} {path}: {anchor} is a file, not a folder; choose another path")
    if not _writable(anchor):
        raise UsageError(f"{option} {path}: {anchor} is not writable; choose another path")


def check_output_file(path: Path, option: str) -> None:
    """Raise UsageError unless ``path`` can be written as a file (its folder exists or can be made)."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} is not writable; choose another path")
    _check_parent(path, option)
