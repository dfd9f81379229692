"""Reading and writing cohort tables (CSV or Parquet) with errors a user can act on.

Data also carries its provenance: whether it is the synthetic cohort. The generator
writes :data:`~cohortlm.contracts.PROVENANCE_FILE` beside its raw tables
(:func:`write_provenance`); a step that derives a Parquet table from such data keeps the
same record in the file's key-value metadata (:func:`write_table`'s ``provenance``), which
no column, row count or reader of the values sees. :func:`read_provenance` reads either.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cohortlm.contracts import PROVENANCE_FILE
from cohortlm.errors import DataError, UsageError

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
#: the Parquet key-value metadata key that holds a table's provenance (a JSON object)
PROVENANCE_KEY = b"cohortlm.provenance"


def _suffix(p: Path) -> str:
    # KFP artifact paths have no suffix: the pipeline's tables are Parquet.
    return p.suffix.lower() if p.suffix else ".parquet"


def read_table(path: str | Path, *, what: str = "data file") -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Args:
        path: the file; the suffix picks the format (.csv, .parquet, .pq; none: Parquet).
        what: how to name the file in error messages.

    Raises:
        UsageError: the file is missing or has an unknown suffix (exit 2).
        DataError: the file is empty, truncated, not the format its suffix
            says, or not UTF-8 (exit 1). Messages never quote the content.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{what} {p} is a folder; give a .csv or .parquet file")
    suffix = _suffix(p)
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{what} {p}: unknown format '{p.suffix}'; use .csv or .parquet")
    if p.stat().st_size == 0:
        raise DataError(f"{what} {p} is empty; export the cohort again")
    if suffix == ".csv":
        try:
            df = pd.read_csv(p, encoding="utf-8", low_memory=False)
        except UnicodeDecodeError:
            raise DataError(f"{what} {p} is not UTF-8 text; re-export it as UTF-8 CSV") from None
        except (pd.errors.ParserError, csv.Error):
            raise DataError(
                f"{what} {p} is not a well-formed CSV (rows with the wrong number of fields?); "
                "check the export"
            ) from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{what} {p} has no header or rows") from None
    else:
        try:
            df = pq.read_table(p).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError):
            raise DataError(
                f"{what} {p} is not a readable Parquet file (truncated, or another format "
                "with a .parquet name?); export it again"
            ) from None
    if df.shape[1] == 0:
        raise DataError(f"{what} {p} has no columns")
    if len(df) == 0:
        raise DataError(f"{what} {p} has a header but no rows")
    return df


def write_table(df: pd.DataFrame, path: str | Path, *, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically: never a half-written file.

    Args:
        df: the table.
        path: the file; the suffix picks the format, as for :func:`read_table`.
        provenance: where the data came from (:func:`read_provenance`'s form), kept in a
            Parquet file's metadata. A CSV file has nowhere to keep it: a table that must
            carry it is written as Parquet (every pipeline table is).
    """
    p = Path(path)
    suffix = _suffix(p)
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"output {p}: unknown format '{p.suffix}'; use .csv or .parquet")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    elif provenance is None:
        df.to_parquet(tmp, index=False)
    else:
        record = _checked_provenance(dict(provenance), f"provenance for {p.name}")
        table = pa.Table.from_pandas(df, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), PROVENANCE_KEY: json.dumps(record).encode()}
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    tmp.replace(p)
    return p


def _checked_provenance(record: Any, where: str) -> dict[str, Any]:
    """``record`` if it is a JSON object whose ``synthetic`` is true or false, else a DataError."""
    if not isinstance(record, dict) or not isinstance(record.get("synthetic"), bool):
        raise DataError(
            f"{where} is not a JSON object with 'synthetic' true or false; "
            "write the data again (cohortlm synth) or remove the provenance"
        )
    return record


def write_provenance(folder: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` as ``folder``'s :data:`~cohortlm.contracts.PROVENANCE_FILE` (atomically).

    The record says how the tables beside it were made (generator, size, seed); it must
    hold no patient value or identifier.
    """
    path = Path(folder) / PROVENANCE_FILE
    checked = _checked_provenance(dict(record), f"provenance for {path.parent.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(PROVENANCE_FILE + ".tmp")
    tmp.write_text(json.dumps(checked, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance the data at ``path`` records, or None when it records none.

    A folder's :data:`~cohortlm.contracts.PROVENANCE_FILE`, or a Parquet file's metadata
    written by :func:`write_table`; a CSV file, a folder without the file, a Parquet file
    without the key or a missing path record none. Only the metadata is read, not the rows.

    Raises:
        DataError: the record is there but is not a JSON object with ``synthetic`` true or
            false (a wrong record is refused rather than read as real data).
    """
    p = Path(path)
    if p.is_dir():
        record_file = p / PROVENANCE_FILE
        if not record_file.is_file():
            return None
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        return _checked_provenance(record, f"{record_file}")
    if not p.is_file() or _suffix(p) not in (".parquet", ".pq"):
        return None
    try:
        metadata = pq.read_schema(p).metadata or {}
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError):
        raise DataError(f"{p} is not a readable Parquet file; export it again") from None
    if PROVENANCE_KEY not in metadata:
        return None
    try:
        record = json.loads(metadata[PROVENANCE_KEY].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = None
    return _checked_provenance(record, f"the provenance metadata of {p.name}")
