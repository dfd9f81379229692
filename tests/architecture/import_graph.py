"""The import graph of a package tree, read from source (no module is imported).

Every ``import`` and ``from ... import`` counts, at module level or inside a
function, and so does ``importlib.import_module("name")`` / ``__import__("name")``
with a literal name. Imports under ``if TYPE_CHECKING:`` are kept apart: mypy
reads them, Python never runs them, so they are no dependency at run time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it names, dotted (``pkg.mod`` or ``pkg.mod.attr``)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.body:
                yield sub, True
                yield from _walk(sub, True)
            for sub in child.orelse:
                yield sub, type_only
                yield from _walk(sub, type_only)
            continue
        yield child, type_only
        yield from _walk(child, type_only)


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in one file of the package ``root``."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []
    for node, type_only in _walk(ast.parse(path.read_text(), filename=str(path)), False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            targets = [node.args[0].value]
        out += [Import(name, t, getattr(node, "lineno", 0), type_only) for t in targets]
    return out


def package_imports(root: Path) -> list[Import]:
    """Every import in every ``.py`` file under ``root`` (a package folder)."""
    return [i for path in sorted(root.rglob("*.py")) for i in imports_of(root, path)]


def modules(root: Path) -> set[str]:
    return {module_name(root, p) for p in root.rglob("*.py")}


def resolve(target: str, known: set[str]) -> str | None:
    """The known module a dotted target lies in (longest prefix), if any."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def graph(root: Path, *, runtime_only: bool = True) -> dict[str, set[str]]:
    """Module -> the modules of the same tree it imports (itself and its parents excluded)."""
    return graph_of([root], runtime_only=runtime_only)


def graph_of(roots: list[Path], *, runtime_only: bool = True) -> dict[str, set[str]]:
    """Module -> the modules of any of the trees ``roots`` it imports (itself and its parents excluded)."""
    known = set().union(*(modules(root) for root in roots))
    edges: dict[str, set[str]] = {m: set() for m in known}
    for imp in (i for root in roots for i in package_imports(root)):
        if runtime_only and imp.type_only:
            continue
        target = resolve(imp.target, known)
        # ``from pkg import mod`` also names the package ``pkg``: only the module counts.
        if target is not None and target != imp.module and not imp.module.startswith(f"{target}."):
            edges[imp.module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
