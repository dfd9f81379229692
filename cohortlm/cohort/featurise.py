"""Featurisers: raw registry tables -> one row per eligible patient.

A study names its featuriser in the spec (``featuriser: ra_visits``); a study
without one is a flat table already (one row per patient) and is used as is.

``ra_visits`` (the RA study):

* Baseline is the enrolment visit (the first visit on the enrolment date).
  Inputs are that visit's index components and values, the patient's
  demographics and comorbidities, and the drugs active on that day (started on
  or before it and not stopped by it).
* The endpoint visit is the visit nearest to 24 months after baseline within
  the window **21-27 months** (±3 months, half the 6-month visit interval, so
  at most one scheduled visit falls in it). Its DAS28-ESR, DAS28-CRP, CDAI and
  J-HAQ become ``das28_esr_2y``, ``das28_crp_2y``, ``cdai_2y``, ``jhaq_2y``.
* Exclusion reasons, counted: ``no_baseline_visit``, ``follow_up_under_2y``
  (last visit before 21 months), ``no_visit_in_window`` (followed past 21
  months but never seen between 21 and 27), ``missing_endpoint_values`` (the
  endpoint visit lacks an index value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlm.cohort.conform import conform_table
from cohortlm.cohort.io import read_provenance, read_table
from cohortlm.cohort.study import FEATURISER_NAMES, StudySpec
from cohortlm.errors import DataError, UsageError

WINDOW_MONTHS = (21.0, 27.0)
TARGET_MONTHS = 24.0
MONTH_DAYS = 30.4375
INDEX_COLUMNS = ("das28_esr", "das28_crp", "cdai", "jhaq")
VISIT_COMPONENTS = ("tjc28", "sjc28", "esr", "crp_mg_l", "ptga_mm", "evga_mm")


@dataclass
class FeaturiseResult:
    """The featurised table and what was left out, by reason."""

    table: pd.DataFrame
    n_input: int
    exclusions: dict[str, int] = field(default_factory=dict)
    #: what a person should know about the data (counts and column names only)
    notes: list[str] = field(default_factory=list)
    #: where the input came from (:func:`data_provenance`), filled in by :func:`featurise`
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_included(self) -> int:
        """Patients in the featurised table."""
        return len(self.table)


def _require(df: pd.DataFrame, columns: list[str] | tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s): {', '.join(missing)}; the raw export must have them")


def featurise_ra_visits(raw: str | Path, spec: StudySpec) -> FeaturiseResult:
    """Featurise the raw RA registry tables in folder ``raw`` (see module docstring)."""
    pid = spec.id_column
    patients, visits, meds = _read_raw(Path(raw), pid)
    n_input = len(patients)
    p = patients.set_index(pid)
    visits = visits.merge(p[["enrolment_date"]], left_on=pid, right_index=True, how="inner")
    visits["months"] = (visits["visit_date"] - visits["enrolment_date"]).dt.days / MONTH_DAYS
    exclusions: dict[str, int] = {}
    ids, base, end, last = _eligible(p, visits, pid, exclusions)
    out = _baseline_patient(p, ids, pid)
    _baseline_drugs(out, meds, p, ids, pid)
    b = base.reindex(ids)
    for col in (*VISIT_COMPONENTS, *INDEX_COLUMNS):
        out[col] = b[col].to_numpy()
    for col in INDEX_COLUMNS:
        out[f"{col}_2y"] = end.loc[ids, col].to_numpy()
    out["followup_months"] = last.reindex(ids).round(1).to_numpy()
    out["endpoint_visit_months"] = end.loc[ids, "months"].round(2).to_numpy()
    out = out.reset_index()
    spec.check_columns(out, what="the featurised table")
    return FeaturiseResult(table=out, n_input=n_input, exclusions=exclusions)


def _read_raw(folder: Path, pid: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The patients, visits and medications tables from ``folder``, checked, with their dates parsed."""
    if not folder.is_dir():
        raise UsageError(f"--raw {folder} is not a folder with patients, visits and medications tables")
    tables = {}
    for name in ("patients", "visits", "medications"):
        candidates = [folder / f"{name}.parquet", folder / f"{name}.csv"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise UsageError(f"--raw {folder} has no {name}.parquet or {name}.csv")
        tables[name] = read_table(path, what=f"raw table {path.name}")
    patients, visits, meds = tables["patients"], tables["visits"], tables["medications"]
    needs = _raw_tables(pid)
    _require(patients, needs["patients"], "patients table")
    _require(visits, needs["visits"], "visits table")
    _require(meds, needs["medications"], "medications table")
    if patients[pid].duplicated().any():
        raise DataError(
            f"patients table has {int(patients[pid].duplicated().sum())} duplicated {pid} value(s); "
            "each patient must appear once"
        )
    for df, cols in (
        (patients, ["birth_date", "ra_onset_date", "enrolment_date"]),
        (visits, ["visit_date"]),
        (meds, ["start_date", "stop_date"]),
    ):
        for c in cols:
            try:
                df[c] = pd.to_datetime(df[c])
            except (ValueError, TypeError):
                raise DataError(
                    f"column {c} holds values that are not dates; use ISO dates (YYYY-MM-DD)"
                ) from None
    return patients, visits, meds


def _eligible(
    p: pd.DataFrame, visits: pd.DataFrame, pid: str, exclusions: dict[str, int]
) -> tuple[pd.Index, pd.DataFrame, pd.DataFrame, pd.Series]:
    """The eligible patients, counting each exclusion reason into ``exclusions`` in turn.

    Returns:
        The eligible ids, the baseline visits, the endpoint visits (on those ids)
        and each patient's last visit month.
    """
    base = visits[visits["months"].abs() < 0.5].sort_values([pid, "visit_date"]).drop_duplicates(pid)
    base = base.set_index(pid)
    has_base = p.index.isin(base.index)
    exclusions["no_baseline_visit"] = int((~has_base).sum())

    last = visits.groupby(pid)["months"].max().reindex(p.index)
    short = has_base & (last.to_numpy() < WINDOW_MONTHS[0])
    exclusions["follow_up_under_2y"] = int(short.sum())

    lo, hi = WINDOW_MONTHS
    window = visits[(visits["months"] >= lo) & (visits["months"] <= hi)].copy()
    window["dist"] = (window["months"] - TARGET_MONTHS).abs()
    end = window.sort_values([pid, "dist", "visit_date"]).drop_duplicates(pid).set_index(pid)
    in_window = p.index.isin(end.index)
    no_window = has_base & ~short & ~in_window
    exclusions["no_visit_in_window"] = int(no_window.sum())

    eligible = has_base & ~short & in_window
    ids = p.index[eligible]
    end = end.reindex(ids)
    missing_end = end[list(INDEX_COLUMNS)].isna().any(axis=1).to_numpy()
    exclusions["missing_endpoint_values"] = int(missing_end.sum())
    return ids[~missing_end], base, end, last


def _baseline_patient(p: pd.DataFrame, ids: pd.Index, pid: str) -> pd.DataFrame:
    """The output frame on ``ids``: baseline date, age, sex, disease duration and the patient's traits."""
    pp = p.reindex(ids)
    bdate = pp["enrolment_date"]
    out = pd.DataFrame(index=ids)
    out.index.name = pid
    out["baseline_date"] = bdate
    out["age"] = ((bdate - pp["birth_date"]).dt.days / 365.25).round(1)
    out["sex"] = pp["sex"]
    out["disease_duration"] = ((bdate - pp["ra_onset_date"]).dt.days / 365.25).clip(lower=0).round(1)
    for col in (
        "bmi",
        "smoking",
        "rf_positive",
        "acpa_positive",
        "hypertension",
        "diabetes",
        "interstitial_lung_disease",
        "osteoporosis",
        "cardiovascular_disease",
    ):
        if col in pp.columns:
            out[col] = pp[col]
    return out


def _baseline_drugs(out: pd.DataFrame, meds: pd.DataFrame, p: pd.DataFrame, ids: pd.Index, pid: str) -> None:
    """Add to ``out`` the drugs active on the baseline day (0/1 flags, the highest dose)."""
    m = meds.merge(p[["enrolment_date"]], left_on=pid, right_index=True, how="inner")
    active = m[
        (m["start_date"] <= m["enrolment_date"])
        & (m["stop_date"].isna() | (m["stop_date"] > m["enrolment_date"]))
    ]

    def flag(mask: pd.Series) -> pd.Series:
        return pd.Series(1, index=active.loc[mask, pid].unique()).reindex(ids, fill_value=0).astype("int64")

    def dose(mask: pd.Series) -> pd.Series:
        return active.loc[mask].groupby(pid)["dose"].max().reindex(ids).fillna(0.0).astype(float)

    is_mtx = active["drug"] == "methotrexate"
    is_gc = active["drug_class"] == "glucocorticoid"
    out["methotrexate"] = flag(is_mtx)
    out["methotrexate_dose"] = dose(is_mtx)
    out["other_csdmard"] = flag((active["drug_class"] == "csDMARD") & ~is_mtx)
    out["biologic"] = flag(active["drug_class"] == "bDMARD")
    out["jak_inhibitor"] = flag(active["drug_class"] == "tsDMARD")
    out["glucocorticoid"] = flag(is_gc)
    out["glucocorticoid_dose"] = dose(is_gc)


def featurise_flat(path: str | Path, spec: StudySpec) -> FeaturiseResult:
    """A flat table (one row per patient), conformed to the spec (mapped columns, codes, 0/1).

    See :func:`cohortlm.cohort.conform.conform_table`; values it cannot map are
    left for validation to count, and the result's notes say how many.
    """

    what = f"cohort file {Path(path).name}"
    conformed = conform_table(read_table(path, what="cohort file"), spec, what=what)
    table = conformed.table
    spec.check_columns(table, what=what)
    if table[spec.id_column].duplicated().any():
        raise DataError(
            f"cohort file has {int(table[spec.id_column].duplicated().sum())} duplicated "
            f"{spec.id_column} value(s); a flat cohort needs one row per patient"
        )
    return FeaturiseResult(table=table, n_input=len(table), exclusions={}, notes=conformed.notes)


#: one function per name a spec may give (``strict``: a name without a function fails at import)
FEATURISERS: dict[str, Callable[[str | Path, StudySpec], FeaturiseResult]] = dict(
    zip(FEATURISER_NAMES, (featurise_ra_visits,), strict=True)
)


def _raw_tables(pid: str) -> dict[str, list[str]]:
    """The tables ``ra_visits`` reads and the columns each must have."""
    return {
        "patients": [pid, "sex", "birth_date", "ra_onset_date", "enrolment_date"],
        "visits": [pid, "visit_date", *VISIT_COMPONENTS, *INDEX_COLUMNS],
        "medications": [pid, "drug", "drug_class", "start_date", "stop_date", "dose"],
    }


#: What each featuriser reads: table name -> required columns, given the id column.
FEATURISER_INPUTS: dict[str, Callable[[str], dict[str, list[str]]]] = {"ra_visits": _raw_tables}


def _header(path: Path) -> list[str]:
    """A table's column names, read without its rows."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


def check_input(raw: str | Path, spec: StudySpec, *, what: str = "--data") -> None:
    """Check, from headers alone, that ``raw`` is what the study's featuriser reads.

    A study with a featuriser needs a folder of raw tables with the columns it
    derives the features from; a study without one needs one table file. Run
    before any step, so that the wrong kind of input is a usage error (exit 2)
    rather than a failure inside the featurise step.

    Raises:
        UsageError: naming what is missing and what the featuriser needs.
    """
    path = Path(raw)
    if spec.featuriser is None:
        if path.is_dir():
            raise UsageError(
                f"{what} {path} is a folder, but study '{spec.name}' has no featuriser: it reads one "
                "table file (.csv or .parquet) with a row per patient"
            )
        return
    needs = FEATURISER_INPUTS[spec.featuriser](spec.id_column)
    listing = "; ".join(f"{t} ({', '.join(cols)})" for t, cols in needs.items())
    if not path.is_dir():
        raise UsageError(
            f"{what} {path.name} is one table, but study '{spec.name}' uses the featuriser "
            f"'{spec.featuriser}', which derives its features from a folder of raw tables: {listing}. "
            "Give that folder; for a flat table with a row per patient, use a study without a "
            "featuriser (cohortlm init-study drafts one from the file)"
        )
    for table, columns in needs.items():
        found = next((c for c in (path / f"{table}.parquet", path / f"{table}.csv") if c.exists()), None)
        if found is None:
            raise UsageError(
                f"{what} {path} has no {table}.parquet or {table}.csv; featuriser '{spec.featuriser}' "
                f"reads {listing}"
            )
        try:
            header = set(_header(found))
        except Exception as exc:  # pyarrow and pandas raise their own kinds for an unreadable file
            raise UsageError(
                f"{what} {found.name} cannot be read as a table ({type(exc).__name__})"
            ) from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise UsageError(
                f"{what} {found.name} lacks column(s) {', '.join(missing)} that featuriser "
                f"'{spec.featuriser}' needs; it reads {listing}"
            )


def data_provenance(raw: str | Path) -> dict[str, Any]:
    """Whether ``raw`` is the synthetic cohort, as the data itself records it.

    The generator writes a provenance file beside its tables, and a Parquet table derived
    from them keeps the record in its metadata (:func:`cohortlm.cohort.io.read_provenance`).
    Input with neither is taken as real data, ``{"synthetic": False}``, not as unknown:
    only the generator writes the record, so data without one did not come from it. Unknown
    (None) is left for tables written before the record existed, which carry nothing.
    """
    return read_provenance(raw) or {"synthetic": False}


def featurise(raw: str | Path, spec: StudySpec) -> FeaturiseResult:
    """Featurise ``raw`` with the study's featuriser, or read it as a flat table; with its provenance."""
    featuriser = featurise_flat if spec.featuriser is None else FEATURISERS[spec.featuriser]
    return replace(featuriser(raw, spec), provenance=data_provenance(raw))
