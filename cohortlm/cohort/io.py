"""Reading and writing cohort tables (CSV or Parquet) with errors a user can act on."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cohortlm.errors import DataError, UsageError

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


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


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically: never a half-written file."""
    p = Path(path)
    suffix = _suffix(p)
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"output {p}: unknown format '{p.suffix}'; use .csv or .parquet")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(p)
    return p
