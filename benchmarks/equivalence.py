"""Is a refactor behaviour-preserving? Smoke runs and compiled pipelines of two commits, file by file.

For each side (a git revision checked out in a temporary worktree, or the
working tree itself) this runs, with that side's code and the same venv:

1. ``cohortlm run --profile smoke`` into a fresh model store: the first champion
   is promoted;
2. the same again into that store: the gate decides against a serving champion;
3. ``cohortlm compile`` for the quick, smoke and paper profiles.

Then every file of both run folders (bar logs, raw data, checkpoints and kfp's
own working folders), of the model store and the three IR files is compared:

* ``same bytes``;
* ``same after normalising``: only fields that record when or how long (time
  stamps, ``seconds``, run ids, absolute paths of the side's own folder) differ;
  JSON is compared as data with those keys dropped, Parquet as tables, text
  line by line with those patterns replaced;
* ``differs``: listed with the first differing line or key, to be explained.

Usage::

    python benchmarks/equivalence.py --base c7be487 --out /tmp/equivalence
    python benchmarks/equivalence.py --base c7be487 --head HEAD --out /tmp/eq --reuse

The report goes to ``OUT/equivalence.md`` and stdout. ``--reuse`` keeps a side's
runs when its folder already holds them (the base side rarely changes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cohortlm", "components", "featurestore", "pipelines", "serving")
PROFILES = ("quick", "smoke", "paper")
#: run-folder parts that are scratch, input or kfp's own bookkeeping
SKIP_PARTS = {"logs", "raw", "checkpoints", ".kfp", "feature_repo"}
#: JSON keys whose values record time, duration or a run's identity
VOLATILE_KEYS = {
    "seconds",
    "step_seconds",
    "elapsed_seconds",
    "trunk_seconds",
    "tokens_per_second",
    "train_seconds",
    "created",
    "created_at",
    "promoted_at",
    "decided_at",
    "timestamp",
    "time",
    "started",
    "finished",
    "run_id",
    "run_dir",
    "peak_memory_mb",
    "wall_seconds",
    "peak_memory_mib",
    "tokens_per_s",
    # a file's digest and size in a bundle's MANIFEST: each file is compared on its own
    "sha256",
    "size",
}
#: JSON lists whose order is a library's set order (peft writes target_modules from a set)
SET_LISTS = {"target_modules"}
VOLATILE_TEXT = [
    # figures embedded in a page: each figure is compared as its own file
    (re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+"), "<png>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T _-]\d\d[:-]\d\d[:-]\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b"), "<run-id>"),
    (re.compile(r"\b\d+(\.\d+)? ?(s|seconds|ms|tokens/s|MiB)\b"), "<quantity>"),
]


def _tree(rev: str, work: Path) -> Path:
    """A folder whose package links point at ``rev``'s code (``WORKTREE``: this checkout)."""
    if rev == "WORKTREE":
        code = REPO
    else:
        code = work / "tree"
        if code.exists():
            subprocess.run(["git", "-C", str(code), "checkout", "-q", "--detach", rev], check=True)
        else:
            add = ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", "-f", str(code), rev]
            subprocess.run(add, check=True)
    # Only the packages: the repository root also holds docker/, which would shadow the docker package.
    path = work / "path"
    path.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        link = path / package
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(code / package)
    return path


def _run_side(rev: str, work: Path, *, reuse: bool) -> dict[str, float]:
    if reuse and (work / "ir_paper.yaml").is_file():
        return {}
    path = _tree(rev, work)
    for name in ("run1", "run2", "store"):
        shutil.rmtree(work / name, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(path), "HF_HUB_OFFLINE": "1"}
    exe = str(Path(sys.executable).with_name("cohortlm"))
    seconds = {}
    for run in ("run1", "run2"):
        start = time.perf_counter()
        subprocess.run(
            [
                exe,
                "run",
                "--profile",
                "smoke",
                "--out",
                str(work / run),
                "--model-store",
                str(work / "store"),
            ],
            cwd=work,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"{run}.stderr").open("w"),
        )
        seconds[run] = time.perf_counter() - start
    for profile in PROFILES:
        subprocess.run(
            [exe, "compile", "--profile", profile, "--out", str(work / f"ir_{profile}.yaml")],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
    return seconds


def _files(root: Path) -> set[str]:
    out = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and not SKIP_PARTS.intersection(rel.parts):
            out.add(str(rel))
    return out


def _versions(work: Path) -> list[str]:
    """The model versions a side made (a hash over the bundle, its creation time included)."""
    found = set()
    for bundle in work.rglob("bundle.json"):
        if not SKIP_PARTS.intersection(bundle.relative_to(work).parts):
            version = json.loads(bundle.read_text()).get("model_version")
            if isinstance(version, str):
                found.add(version)
    return sorted(found)


_VERSIONS: dict[str, list[str]] = {}


def _drop_volatile(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {
            _normal_text(k, root): sorted(v)
            if k in SET_LISTS and isinstance(v, list)
            else _drop_volatile(v, root)
            for k, v in value.items()
            if k not in VOLATILE_KEYS
        }
    if isinstance(value, list):
        return [_drop_volatile(v, root) for v in value]
    if isinstance(value, str):
        return _normal_text(value, root)
    return value


def _normal_text(text: str, root: str) -> str:
    text = text.replace(root, "<side>")
    for version in _VERSIONS.get(root, []):
        text = text.replace(version, "<version>").replace(version[:7], "<version>")
    for pattern, repl in VOLATILE_TEXT:
        text = pattern.sub(repl, text)
    return text


def _header_sorted(text: str) -> str:
    """The IR header's container defaults with sorted keys (older compiles wrote them in map order)."""
    sys.path.insert(0, str(REPO))
    import ast

    from pipelines.train_evaluate_promote import _HEADER_DEFAULT, _sorted_keys

    lines = text.split("\n")
    for i, line in enumerate(lines):
        match = _HEADER_DEFAULT.match(line)
        if line.startswith("#") and match and match.group(2).startswith(("[", "{")):
            lines[i] = f"{match.group(1)}{_sorted_keys(ast.literal_eval(match.group(2)))}]"
    return "\n".join(lines)


def _compare(a: Path, b: Path, root_a: str, root_b: str) -> tuple[str, str]:
    """(verdict, detail) for one file present on both sides."""
    if a.read_bytes() == b.read_bytes():
        return "same bytes", ""
    suffix = a.suffix
    if suffix == ".parquet":
        import pandas as pd

        fa, fb = pd.read_parquet(a), pd.read_parquet(b)
        if fa.equals(fb):
            return "same after normalising", "Parquet metadata only"
        return "differs", f"tables differ ({fa.shape} vs {fb.shape})"
    if suffix == ".json":
        da = _drop_volatile(json.loads(a.read_text()), root_a)
        db = _drop_volatile(json.loads(b.read_text()), root_b)
        if da == db:
            return "same after normalising", "time, duration or path fields only"
        return "differs", _first_json_difference(da, db, "")
    if suffix == ".safetensors":
        return _compare_tensors(a, b)
    if suffix == ".skops":
        return _compare_skops(a, b)
    if suffix in (".png", ".pt", ".bin"):
        return "differs", "binary (a figure: its data files are compared as tables)"
    ta = _normal_text(a.read_text(errors="replace"), root_a)
    tb = _normal_text(b.read_text(errors="replace"), root_b)
    if a.name.startswith("ir_"):
        ta, tb = _header_sorted(ta), _header_sorted(tb)
    if ta == tb:
        return "same after normalising", "time, duration or path text only"
    for n, (la, lb) in enumerate(zip(ta.splitlines(), tb.splitlines(), strict=False), 1):
        if la != lb:
            at = next(i for i, (x, y) in enumerate(zip(la + "\0", lb + "\1", strict=False)) if x != y)
            around = slice(max(0, at - 40), at + 60)
            return "differs", f"line {n}, column {at}: {la[around]!r} -> {lb[around]!r}"
    return "differs", f"{len(ta.splitlines())} vs {len(tb.splitlines())} lines"


def _compare_tensors(a: Path, b: Path) -> tuple[str, str]:
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(a), "np") as fa, safe_open(str(b), "np") as fb:
        if fa.metadata() != fb.metadata() or set(fa.keys()) != set(fb.keys()):
            return "differs", "tensor names or metadata"
        for key in fa.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if not np.array_equal(fa.get_tensor(key), fb.get_tensor(key)):
                return "differs", f"tensor {key}"
    return "same after normalising", "same tensors and metadata (header order only)"


def _compare_skops(a: Path, b: Path) -> tuple[str, str]:
    """skops zips name arrays by object id: compare the arrays as a multiset, the schema with ids blanked."""
    import zipfile

    def content(path: Path) -> tuple[list[bytes], str]:
        with zipfile.ZipFile(path) as z:
            arrays = sorted(z.read(n) for n in z.namelist() if n.endswith(".npy"))
            schema = re.sub(r"\d{6,}", "<id>", z.read("schema.json").decode())
        return arrays, schema

    if content(a) == content(b):
        return "same after normalising", "same arrays and schema (object ids only)"
    return "differs", "model arrays or schema"


def _first_json_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                x, y = a.get(key, "<absent>"), b.get(key, "<absent>")
                return _first_json_difference(x, y, f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_json_difference(x, y, f"{where}[{i}]")
    return f"{where or '(top)'}: {str(a)[:80]!r} -> {str(b)[:80]!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision before the change")
    parser.add_argument("--head", default="WORKTREE", help="git revision after (default: this checkout)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reuse", action="store_true", help="keep a side's runs if present")
    args = parser.parse_args()
    out = args.out.resolve()
    sides = {"base": (args.base, out / "base"), "head": (args.head, out / "head")}
    for name, (rev, work) in sides.items():
        work.mkdir(parents=True, exist_ok=True)
        seconds = _run_side(rev, work, reuse=args.reuse and name == "base")
        print(f"{name} ({rev}): " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()), file=sys.stderr)
    wa, wb = sides["base"][1], sides["head"][1]
    _VERSIONS[str(wa)], _VERSIONS[str(wb)] = _versions(wa), _versions(wb)
    rows = []
    for part in ("run1", "run2", "store"):
        fa = {_normal_text(rel, str(wa)): rel for rel in _files(wa / part)}
        fb = {_normal_text(rel, str(wb)): rel for rel in _files(wb / part)}
        for key in sorted(fa.keys() | fb.keys()):
            if key not in fb or key not in fa:
                rows.append((f"{part}/{key}", "differs", "only in " + ("base" if key in fa else "head")))
                continue
            pa, pb = wa / part / fa[key], wb / part / fb[key]
            rows.append((f"{part}/{key}", *_compare(pa, pb, str(wa), str(wb))))
    for profile in PROFILES:
        name = f"ir_{profile}.yaml"
        rows.append((name, *_compare(wa / name, wb / name, str(wa), str(wb))))
    counts: dict[str, int] = {}
    for _, verdict, _ in rows:
        counts[verdict] = counts.get(verdict, 0) + 1
    lines = [
        f"# Equivalence: {args.base} -> {args.head}",
        "",
        "Two smoke runs (first champion, then a gate against it) and three compiled pipelines per side.",
        "",
        "| verdict | files |",
        "|---|---:|",
        *(f"| {v} | {n} |" for v, n in sorted(counts.items())),
        "",
        "| file | verdict | detail |",
        "|---|---|---|",
        *(f"| `{f}` | {v} | {d.replace('|', '/')} |" for f, v, d in rows if v != "same bytes"),
    ]
    report = "\n".join(lines) + "\n"
    (out / "equivalence.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
