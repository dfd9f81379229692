"""A seeded synthetic cohort shaped like the IORRA registry (the real one is private).

``generate_cohort(n=15004, seed=0)`` returns three raw tables, as a registry
would export them:

* ``patients``: one row per patient: id, sex, birth date, RA onset date,
  enrolment (baseline) date, serology, BMI, smoking, comorbidities.
* ``visits``: semiannual visits (every 6 months, ±1 month) with the index
  components (TJC28, SJC28, ESR mm/h, CRP mg/L, patient and evaluator global
  in mm, the eight J-HAQ category scores) and the indices the registry records
  (DAS28-ESR, DAS28-CRP, CDAI, J-HAQ, rounded to 2 decimals).
* ``medications``: treatment episodes (drug, class, start, stop, dose).

Generating model (all on a latent "inflammatory activity" scale ``A``; one
step is 6 months, visit k is at month 6k):

1. Patient traits: sex (85 % female), age ~ N(58, 13), disease duration
   ~ log-normal (median 7 y), RF (75 %), ACPA (depends on RF), BMI ~ N(22, 3.5),
   smoking, comorbidities whose odds depend on age, sex and smoking.
2. Activity ``A_k = u + e_k - T_k``: a stable patient level
   ``u ~ N(μ, 0.85)`` (μ higher with seropositivity, lower with longer
   disease), a transient AR(1) part ``e_k = 0.6·e_{k-1} + N(0, 0.68)``, and a
   treatment effect ``T_k``.
3. Treatment at baseline depends on activity and calendar era (biologics more
   likely after 2008, JAK inhibitors only after 2013). Its effect builds up
   over a year: MTX 0.25 (more at higher dose), other csDMARD 0.1, biologic
   0.55, JAK inhibitor 0.6. Glucocorticoids mark active disease (0.15
   short-term effect). During follow-up, patients with active disease
   (``A_k`` > 1) escalate to a biologic with probability 0.35 per visit; that
   is not visible at baseline and is part of the noise a model must live with.
4. Measurements given ``A``: TJC28 ~ Poisson(exp(0.95A + 0.35)), SJC28 ~
   Poisson(exp(0.85A - 0.15)) (capped at 28), log ESR ~ N(2.85 + 0.33A +
   0.003·(age-58), 0.42), log CRP ~ N(0.9 + 0.85A, 0.9), PtGA = 33 + 17A +
   N(0, 15) mm, EvGA = 18 + 14A + N(0, 9) mm, clipped to their ranges.
5. Function: ``H_k = D + W_k + 0.3·max(A_k, -1) + N(0, 0.4)`` where the damage
   ``D`` grows with disease duration and age (with a long right tail), ``W_k`` is a
   random walk (N(0, 0.3) per 6 months) plus cumulative activity; each J-HAQ
   category is ``round(H_k + N(0, 0.45))`` clipped to 0-3.
6. Follow-up: a fixed share of patients (3,139 of 15,004, scaled with n)
   drop out before two years, with their last visit at month 0-18, and are
   more likely to be older and active (informative loss to follow-up). The
   others are seen at month 24 and for up to 2 more years.

The endpoints at two years (DAS28-ESR > 5.1 / < 2.6, DAS28-CRP > 4.1 / < 2.3,
CDAI > 22 / ≤ 2.8, J-HAQ > 2.5 / < 0.5) therefore follow from baseline state,
treatment and noise: logistic regression on the baseline reaches test AUCs of
roughly 0.69-0.86 (see README), and prevalences resemble an established
Japanese RA cohort of the 2010s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort import indices
from cohortlm.cohort.io import write_provenance

#: The seed study: 15,004 patients of whom 3,139 have under two years of follow-up.
REFERENCE_N = 15004
REFERENCE_DROPOUTS = 3139
STEPS = 9  # visits at months 0, 6, ..., 48
MONTH_DAYS = 30.4375
HAQ_COLUMNS = tuple(f"haq_{c}" for c in indices.HAQ_CATEGORIES)


@dataclass(frozen=True)
class SyntheticCohort:
    """The three raw tables of a synthetic registry export."""

    patients: pd.DataFrame
    visits: pd.DataFrame
    medications: pd.DataFrame
    #: the generator's arguments (seed, shifts), recorded in the provenance
    settings: Mapping[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """What the folder's provenance file says: synthetic, this generator, n and settings."""
        return {"synthetic": True, "generator": __name__, "n": len(self.patients), **self.settings}

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``patients.parquet``, ``visits.parquet`` and ``medications.parquet`` to ``out``.

        Also :data:`~cohortlm.contracts.PROVENANCE_FILE` (:meth:`provenance`), which the
        featurise step reads so that the run's outcome and model card say the data is
        synthetic. Returns the tables' paths.
        """
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        # First: tables without it would pass for a user's real data, which is the worse mistake.
        write_provenance(folder, self.provenance())
        paths = {}
        for name in ("patients", "visits", "medications"):
            path = folder / f"{name}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            getattr(self, name).to_parquet(tmp, index=False)
            tmp.replace(path)  # atomic: a reader never sees half a table
            paths[name] = path
        return paths


def dropout_count(n: int) -> int:
    """Patients with under two years of follow-up: 3,139 of 15,004, scaled to ``n``."""
    return round(n * REFERENCE_DROPOUTS / REFERENCE_N)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_cohort(
    n: int = REFERENCE_N, seed: int = 0, *, age_shift: float = 0.0, era_shift_years: float = 0.0
) -> SyntheticCohort:
    """Generate the raw tables for ``n`` patients; the same seed gives identical data.

    Args:
        n: number of patients (at least 10).
        seed: seed of the random generator.
        age_shift: years added to the mean age at enrolment (a shifted population, e.g. for
            a simulated deployment; 0 keeps the reference cohort bit for bit).
        era_shift_years: years the enrolment period moves forward (more biologics and JAK
            inhibitors at baseline; 0 keeps the reference cohort).

    Returns:
        The patients, visits and medications tables.
    """
    if n < 10:
        raise ValueError(f"n must be at least 10, got {n}")
    rng = np.random.default_rng(seed)
    # The phases draw from ``rng`` in this order; changing it changes the cohort.
    traits = _patient_traits(rng, n, age_shift=age_shift, era_shift_years=era_shift_years)
    u, e = _latent_activity(rng, traits)
    a0 = u + e[:, 0]
    treatment = _baseline_treatment(rng, traits, a0)
    activity, escalation_step = _activity_course(rng, u, e, treatment)
    haq_latent = _function_latent(rng, traits, activity)
    last_step = _follow_up(rng, traits, a0)
    pid = np.array([f"P{i + 1:06d}" for i in range(n)])
    visits = _visits(rng, pid, traits, activity, haq_latent, last_step)
    patients = _patients(rng, pid, traits)
    medications = _medications(rng, pid, traits.baseline, last_step, treatment, escalation_step)
    settings = {"seed": seed, "age_shift": age_shift, "era_shift_years": era_shift_years}
    return SyntheticCohort(patients=patients, visits=visits, medications=medications, settings=settings)


@dataclass(frozen=True)
class _Traits:
    """Step 1: what a patient brings to enrolment."""

    female: np.ndarray
    age: np.ndarray
    duration: np.ndarray
    rf: np.ndarray
    acpa: np.ndarray
    bmi: np.ndarray
    smoking: np.ndarray
    smoker: np.ndarray
    agez: np.ndarray
    hypertension: np.ndarray
    diabetes: np.ndarray
    ild: np.ndarray
    osteoporosis: np.ndarray
    cvd: np.ndarray
    baseline: np.ndarray
    year: np.ndarray


@dataclass(frozen=True)
class _Treatment:
    """Step 3: the drugs a patient is on at baseline."""

    mtx: np.ndarray
    mtx_dose: np.ndarray
    other: np.ndarray
    bio: np.ndarray
    jak: np.ndarray
    gc: np.ndarray
    gc_dose: np.ndarray


def _patient_traits(
    rng: np.random.Generator, n: int, *, age_shift: float = 0.0, era_shift_years: float = 0.0
) -> _Traits:
    """Step 1: sex, age, disease duration, serology, BMI, smoking, comorbidities, enrolment date."""
    female = rng.random(n) < 0.85
    age = np.clip(rng.normal(58 + age_shift, 13, n), 18, 92)
    duration = np.minimum(np.exp(rng.normal(np.log(7.0), 0.9, n)), age - 16)
    rf = rng.random(n) < 0.75
    acpa = rng.random(n) < np.where(rf, 0.88, 0.35)
    bmi = np.clip(rng.normal(22.0, 3.5, n), 14, 45)
    smoke_u = rng.random(n)
    p_current = np.where(female, 0.09, 0.28)
    p_former = np.where(female, 0.14, 0.35)
    smoking = np.where(
        smoke_u < p_current, "current", np.where(smoke_u < p_current + p_former, "former", "never")
    )
    smoker = smoking != "never"
    agez = (age - 58) / 13
    hypertension = rng.random(n) < _sigmoid(-1.0 + 0.9 * agez)
    diabetes = rng.random(n) < _sigmoid(-2.3 + 0.5 * agez + 0.4 * ~female)
    ild = rng.random(n) < _sigmoid(-3.0 + 0.5 * agez + 0.7 * smoker + 0.5 * ~female + 0.4 * acpa)
    osteoporosis = rng.random(n) < _sigmoid(-1.5 + 0.8 * agez + 0.9 * female)
    cvd = rng.random(n) < _sigmoid(-3.0 + 0.8 * agez + 0.5 * ~female + 0.3 * smoker)
    start = np.datetime64("2005-01-01")
    era = np.timedelta64(round(era_shift_years * 365.25), "D")
    baseline = start + era + rng.integers(0, 14 * 365, n).astype("timedelta64[D]")
    year = 2005 + (baseline - start).astype(int) / 365.25
    return _Traits(
        female=female,
        age=age,
        duration=duration,
        rf=rf,
        acpa=acpa,
        bmi=bmi,
        smoking=smoking,
        smoker=smoker,
        agez=agez,
        hypertension=hypertension,
        diabetes=diabetes,
        ild=ild,
        osteoporosis=osteoporosis,
        cvd=cvd,
        baseline=baseline,
        year=year,
    )


def _latent_activity(rng: np.random.Generator, traits: _Traits) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: the stable level ``u`` and the AR(1) transient ``e`` of untreated activity."""
    n = len(traits.age)
    mu = 0.05 + 0.25 * traits.rf + 0.15 * traits.acpa - 0.12 * np.log1p(traits.duration) + 0.1 * traits.smoker
    u = rng.normal(mu, 0.85)
    e = np.zeros((n, STEPS))
    e[:, 0] = rng.normal(0, 0.75, n)
    for k in range(1, STEPS):
        e[:, k] = 0.6 * e[:, k - 1] + rng.normal(0, 0.68, n)
    return u, e


def _baseline_treatment(rng: np.random.Generator, traits: _Traits, a0: np.ndarray) -> _Treatment:
    """Step 3: treatment at baseline, depending on activity ``a0`` and calendar era."""
    n = len(a0)
    agez, year = traits.agez, traits.year
    era_bio = np.clip((year - 2003) / 12, 0, 1)
    mtx = rng.random(n) < _sigmoid(0.7 + 0.3 * a0 - 0.6 * (traits.age > 75))
    mtx_dose = np.where(mtx, np.clip(np.round(rng.normal(9 + 1.5 * era_bio, 2.5, n) / 2) * 2, 2, 16), 0.0)
    other = rng.random(n) < _sigmoid(-0.9 + 0.2 * a0 - 0.5 * mtx)
    bio = rng.random(n) < _sigmoid(-2.6 + 0.7 * a0 + 2.0 * era_bio)
    jak = (~bio) & (year > 2013) & (rng.random(n) < _sigmoid(-3.2 + 0.6 * a0))
    gc = rng.random(n) < _sigmoid(-0.8 + 0.5 * a0 + 0.3 * agez)
    gc_dose = np.where(gc, np.clip(np.round(np.exp(rng.normal(np.log(4.0), 0.5, n)) * 2) / 2, 1, 30), 0.0)
    return _Treatment(mtx=mtx, mtx_dose=mtx_dose, other=other, bio=bio, jak=jak, gc=gc, gc_dose=gc_dose)


def _activity_course(
    rng: np.random.Generator, u: np.ndarray, e: np.ndarray, t: _Treatment
) -> tuple[np.ndarray, np.ndarray]:
    """Step 3, follow-up: activity under treatment, with escalation to a biologic when active.

    Returns:
        The activity per patient and step, and the step of escalation (-1 for none).
    """
    n = len(u)
    effect = 0.25 * t.mtx * (0.6 + t.mtx_dose / 20) + 0.1 * t.other + 0.55 * t.bio + 0.6 * t.jak
    ramp = np.minimum(np.arange(STEPS) / 2, 1.0)  # effect builds up over a year
    treat = effect[:, None] * ramp[None, :]
    treat[:, 1] += 0.15 * t.gc  # short-term glucocorticoid effect
    activity = u[:, None] + e - treat
    escalated = np.zeros(n, dtype=bool)
    escalation_step = np.full(n, -1)
    for k in range(1, STEPS - 1):
        go = (~escalated) & (~t.bio) & (~t.jak) & (activity[:, k] > 1.0) & (rng.random(n) < 0.35)
        escalated |= go
        escalation_step[go] = k
        activity[go, k + 1 :] -= 0.5 * np.minimum(np.arange(1, STEPS - k) / 2, 1.0)[None, :]
    return activity, escalation_step


def _function_latent(rng: np.random.Generator, traits: _Traits, activity: np.ndarray) -> np.ndarray:
    """Step 5: latent J-HAQ per patient and step; damage grows with duration, age and cumulative activity."""
    n = len(activity)
    damage = (
        -0.4
        + 0.22 * np.log1p(traits.duration)
        + 0.012 * (traits.age - 58)
        + rng.normal(0, 0.35, n)
        + rng.gamma(1.3, 0.4, n)
    )
    cum = np.cumsum(np.maximum(activity, 0), axis=1) * 0.04
    drift = np.cumsum(rng.normal(0, 0.3, (n, STEPS)) * (np.arange(STEPS) > 0), axis=1)
    return damage[:, None] + drift + cum + 0.3 * np.maximum(activity, -1) + rng.normal(0, 0.4, (n, STEPS))


def _follow_up(rng: np.random.Generator, traits: _Traits, a0: np.ndarray) -> np.ndarray:
    """Step 6: the last visit step per patient, with informative dropout before two years."""
    n = len(a0)
    n_drop = dropout_count(n)
    drop_score = 0.4 * traits.agez + 0.3 * a0 + rng.normal(0, 1, n)
    drop = np.zeros(n, dtype=bool)
    drop[np.argsort(-drop_score, kind="stable")[:n_drop]] = True
    return np.where(drop, rng.integers(0, 4, n), 4 + rng.integers(0, 5, n))


def _visits(
    rng: np.random.Generator,
    pid: np.ndarray,
    traits: _Traits,
    activity: np.ndarray,
    haq_latent: np.ndarray,
    last_step: np.ndarray,
) -> pd.DataFrame:
    """Step 4: the measurements and recorded indices at every visit up to each patient's last."""
    rows_patient, rows_step = np.nonzero(np.arange(STEPS)[None, :] <= last_step[:, None])
    a = activity[rows_patient, rows_step]
    m = len(a)
    jitter = np.where(rows_step == 0, 0.0, rng.uniform(-1, 1, m))
    days = np.round((6 * rows_step + jitter) * MONTH_DAYS).astype("timedelta64[D]")
    tjc = np.minimum(rng.poisson(np.exp(0.95 * a + 0.35)), 28)
    sjc = np.minimum(rng.poisson(np.exp(0.85 * a - 0.15)), 28)
    esr = np.round(
        np.clip(np.exp(rng.normal(2.85 + 0.33 * a + 0.003 * (traits.age[rows_patient] - 58), 0.42)), 2, 140)
    )
    crp = np.round(np.clip(np.exp(rng.normal(0.9 + 0.85 * a, 0.9)), 0.1, 250), 1)
    ptga = np.round(np.clip(33 + 17 * a + rng.normal(0, 15, m), 0, 100))
    evga = np.round(np.clip(18 + 14 * a + rng.normal(0, 9, m), 0, 100))
    haq = np.clip(np.round(haq_latent[rows_patient, rows_step][:, None] + rng.normal(0, 0.45, (m, 8))), 0, 3)
    visits = pd.DataFrame(
        {
            "patient_id": pid[rows_patient],
            "visit_date": (traits.baseline[rows_patient] + days).astype("datetime64[ns]"),
            "tjc28": tjc.astype("int64"),
            "sjc28": sjc.astype("int64"),
            "esr": esr,
            "crp_mg_l": crp,
            "ptga_mm": ptga,
            "evga_mm": evga,
        }
    )
    for j, col in enumerate(HAQ_COLUMNS):
        visits[col] = haq[:, j].astype("int64")
    visits["das28_esr"] = np.round(indices.das28_esr(tjc, sjc, esr, ptga), 2)
    visits["das28_crp"] = np.round(indices.das28_crp(tjc, sjc, crp, ptga), 2)
    visits["cdai"] = np.round(indices.cdai(tjc, sjc, ptga, evga), 1)
    visits["jhaq"] = np.round(indices.jhaq(haq), 3)
    return visits


def _patients(rng: np.random.Generator, pid: np.ndarray, t: _Traits) -> pd.DataFrame:
    """The patients table, with BMI and ACPA missing for a few patients as in a real export."""
    n = len(pid)
    birth = t.baseline - np.round(t.age * 365.25).astype("timedelta64[D]")
    onset = t.baseline - np.round(t.duration * 365.25).astype("timedelta64[D]")
    bmi_obs = np.where(rng.random(n) < 0.04, np.nan, np.round(t.bmi, 1))
    acpa_obs = np.where(rng.random(n) < 0.05, np.nan, t.acpa.astype(float))
    return pd.DataFrame(
        {
            "patient_id": pid,
            "sex": np.where(t.female, "female", "male"),
            "birth_date": birth.astype("datetime64[ns]"),
            "ra_onset_date": onset.astype("datetime64[ns]"),
            "enrolment_date": t.baseline.astype("datetime64[ns]"),
            "rf_positive": t.rf.astype("int64"),
            "acpa_positive": acpa_obs,
            "bmi": bmi_obs,
            "smoking": t.smoking,
            "hypertension": t.hypertension.astype("int64"),
            "diabetes": t.diabetes.astype("int64"),
            "interstitial_lung_disease": t.ild.astype("int64"),
            "osteoporosis": t.osteoporosis.astype("int64"),
            "cardiovascular_disease": t.cvd.astype("int64"),
        }
    )


_OTHER = ("sulfasalazine", "bucillamine", "tacrolimus", "iguratimod")
_BIOLOGICS = (
    "infliximab",
    "etanercept",
    "adalimumab",
    "tocilizumab",
    "abatacept",
    "golimumab",
    "certolizumab",
)
_JAKS = ("tofacitinib", "baricitinib", "upadacitinib")


def _medications(
    rng: np.random.Generator,
    pid: np.ndarray,
    baseline: np.ndarray,
    last_step: np.ndarray,
    treatment: _Treatment,
    escalation_step: np.ndarray,
) -> pd.DataFrame:
    """The medications table: the baseline drugs' episodes, then the escalations to a biologic."""
    t = treatment
    n = len(pid)
    frames = []
    end = baseline + np.round(last_step * 6 * MONTH_DAYS).astype("timedelta64[D]")

    def episodes(
        mask: np.ndarray,
        drug: np.ndarray,
        cls: str,
        dose: np.ndarray,
        unit: str,
        start_offset_days: np.ndarray,
    ) -> None:
        idx = np.nonzero(mask)[0]
        if not len(idx):
            return
        starts = baseline[idx] + start_offset_days[idx].astype("timedelta64[D]")
        # Some episodes stop during follow-up (side effects, remission), never
        # before baseline: a baseline drug is active at baseline.
        stops = np.where(
            rng.random(len(idx)) < 0.25,
            np.maximum(starts, baseline[idx]) + rng.integers(60, 900, len(idx)).astype("timedelta64[D]"),
            np.datetime64("NaT"),
        )
        stops = np.where(stops > end[idx], np.datetime64("NaT"), stops)
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": pid[idx],
                    "drug": drug[idx],
                    "drug_class": cls,
                    "start_date": starts.astype("datetime64[ns]"),
                    "stop_date": pd.to_datetime(stops),
                    "dose": dose[idx],
                    "dose_unit": unit,
                }
            )
        )

    before = -rng.integers(30, 3000, n)  # baseline drugs started before enrolment
    nan = np.full(n, np.nan)
    episodes(t.mtx, np.full(n, "methotrexate"), "csDMARD", t.mtx_dose, "mg/week", before)
    episodes(t.other, rng.choice(_OTHER, n), "csDMARD", nan, "", -rng.integers(30, 3000, n))
    episodes(t.bio, rng.choice(_BIOLOGICS, n), "bDMARD", nan, "", -rng.integers(30, 1500, n))
    episodes(t.jak, rng.choice(_JAKS, n), "tsDMARD", nan, "", -rng.integers(30, 600, n))
    episodes(
        t.gc, np.full(n, "prednisolone"), "glucocorticoid", t.gc_dose, "mg/day", -rng.integers(30, 2000, n)
    )
    esc = escalation_step >= 1
    esc_days = np.round(escalation_step * 6 * MONTH_DAYS + 14).astype(int)
    episodes(esc, rng.choice(_BIOLOGICS, n), "bDMARD", nan, "", esc_days)
    meds = pd.concat(frames, ignore_index=True)
    meds["stop_date"] = meds["stop_date"].astype("datetime64[ns]")
    return meds.sort_values(["patient_id", "start_date", "drug"], kind="stable").reset_index(drop=True)
