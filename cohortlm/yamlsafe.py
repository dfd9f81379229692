"""One safe YAML loader for every configuration file cohortlm reads (study specs, gate policies).

``yaml.safe_load`` alone is not enough for a file a user (or an attacker) hands
over: an alias bomb (``a: &a [*b, *b, ...]``) expands to gigabytes, a 10 MB
file takes minutes, and a duplicate key silently keeps the last value. This
loader refuses, before anything is built:

* files over :data:`MAX_YAML_BYTES` (1 MB; the largest real spec is ~10 KB);
* aliases (``*name``): a spec has no need for them, and refusing them is
  simpler and safer than capping their expansion;
* nesting deeper than :data:`MAX_DEPTH`;
* a key given twice in one mapping;
* anything but the plain YAML types (SafeLoader: no Python objects).

Errors are :class:`~cohortlm.errors.SpecError` in the ``file: where: what is
wrong`` form and never quote the file's content (a line number at most).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from cohortlm.errors import SpecError

MAX_YAML_BYTES = 1_000_000
MAX_DEPTH = 64
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

# libyaml's parser is ~4x faster than the pure-Python one on a 1 MB file.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


def _printable_key(key: Any) -> str:
    """A key fit for a message: short identifiers only (a key could be anything)."""
    text = str(key)
    if len(text) <= 64 and text.replace("_", "").replace("-", "").isalnum() and text.isascii():
        return text
    return "<a key>"


def _scan(text: str, source: str) -> None:
    """Refuse aliases and deep nesting from the token stream, before any node is built."""
    depth = 0
    for token in yaml.scan(text, Loader=_BaseLoader):
        if isinstance(token, yaml.AliasToken):
            raise SpecError(
                f"{source}: {_line(token.start_mark)}: YAML aliases (*name) are not allowed; "
                "write the value out"
            )
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"{source}: {_line(token.start_mark)}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(token, _CLOSERS):
            depth -= 1


def _check_keys(node: yaml.Node, source: str, where: str) -> None:
    """Refuse a key given twice in one mapping, anywhere in the document."""
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                ident = (key_node.tag, key_node.value)
                name = _printable_key(key_node.value)
                if ident in seen:
                    at = f"{where}.{name}" if where else name
                    raise SpecError(
                        f"{source}: {at}: the key is given twice ({_line(key_node.start_mark)}); keep one"
                    )
                seen.add(ident)
                child = f"{where}.{name}" if where else name
            else:
                child = where or "<document>"
            _check_keys(value_node, source, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, source, f"{where}[{i}]")


@contextmanager
def _checked_loader(text: str, source: str) -> Iterator[Any]:
    """A loader for ``text`` once aliases and deep nesting are refused; parse errors become SpecErrors."""
    loader = _BaseLoader(text)
    try:
        _scan(text, source)
        yield loader
    except yaml.MarkedYAMLError as exc:
        # The parser's words, with anything it quotes from the file (a tag, a character) left out.
        problem = _QUOTED.sub("'...'", exc.problem or "syntax error")
        raise SpecError(f"{source}: {_line(exc.problem_mark)}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML ({type(exc).__name__})") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_text(text: str, *, source: str = "<yaml>") -> Any:
    """Parse one YAML document safely (see the module docstring for what is refused).

    Args:
        text: the document.
        source: the file name (or another label) that starts every error message.

    Returns:
        Plain Python data (dict, list, str, int, float, bool, None, dates), or None for an empty document.

    Raises:
        SpecError: the text is too large, not YAML, or uses something refused here.
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise SpecError(
            f"{source}: larger than {MAX_YAML_BYTES // 1_000_000} MB; a spec or policy is far smaller"
        )
    with _checked_loader(text, source) as loader:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(node, source, "")
        return loader.construct_document(node)


def load_yaml_documents(text: str, *, source: str = "<yaml>") -> list[Any]:
    """Parse every document of a multi-document YAML stream (``---`` separated) safely.

    The same refusals as :func:`load_yaml_text` apply to the stream as a whole
    (a compiled KFP pipeline is its spec and its platform spec in one file).

    Raises:
        SpecError: the text is too large, not YAML, or uses something refused here.
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise SpecError(f"{source}: larger than {MAX_YAML_BYTES // 1_000_000} MB")
    docs: list[Any] = []
    with _checked_loader(text, source) as loader:
        while loader.check_node():
            node = loader.get_node()
            _check_keys(node, source, "")
            docs.append(loader.construct_document(node))
    return docs


def load_yaml_file(path: str | Path, *, what: str = "file") -> Any:
    """Read and parse a YAML file safely; the size is checked before reading.

    Args:
        path: the file.
        what: what the file is (``"study file"``, ``"policy file"``), for the not-found message.

    Raises:
        SpecError: missing, unreadable, over the size limit, not UTF-8, or refused by :func:`load_yaml_text`.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise SpecError(f"{what} {p} is not a file")
        if size > MAX_YAML_BYTES:
            raise SpecError(
                f"{p}: {size:,} bytes, larger than the {MAX_YAML_BYTES:,} bytes a spec or policy may have"
            )
        with p.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise SpecError(f"{what} {p} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise SpecError(f"{p}: larger than the {MAX_YAML_BYTES:,} bytes a spec or policy may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text ({exc.reason})") from None
    return load_yaml_text(text, source=str(p))
