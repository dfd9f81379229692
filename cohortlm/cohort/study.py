"""StudySpec: the one place that names a study's features, endpoints, split and rules.

A study is a YAML file (see ``cohortlm/studies/ra_iorra.yaml``)::

    name: ra_iorra
    version: 1
    id_column: patient_id
    featuriser: ra_visits        # optional
    features:
      - {name: age, type: numeric, unit: years, min: 16, max: 100}
    endpoints:
      - {name: das28_esr_high, column: das28_esr_2y, operator: ">", threshold: 5.1}
    split: {sizes: {train: 9500, validation: 102, test: 2263}, seed: 0}
    rules: [das28_esr_consistent]

Real cohorts rarely arrive in that shape; a feature can say how its column looks::

      - {name: sex, type: categorical, column: "Sex (1=M, 2=F)", categories: {1: male, 2: female}}
      - {name: grade, type: categorical, categories: [1, 2, 3]}        # codes that are the labels
      - {name: smoker, type: binary, true_values: ["yes"], false_values: ["no"]}
      - {name: diabetes, type: binary, true_values: [1], false_values: [2]}
    endpoints:
      - {name: died_1y, column: death_within_1y}   # a 0/1 or true/false column is the outcome itself

``column`` names the column in the data file (any header text), ``categories``
may map integer (or text) codes to labels, and ``true_values``/``false_values``
list what a binary column holds for yes and no (YAML reads an unquoted ``yes``
as true: both match yes/true/on). :func:`cohortlm.cohort.conform.conform_table`
turns such a file into the featurised table (columns named by feature, labels,
0/1). These keys are optional and left out of :attr:`StudySpec.spec_hash` when
unset, so existing specs keep their hash.

Loading validates everything; any problem raises :class:`SpecError` naming the
file and the key, so the CLI can exit 2 with one line and no traceback.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from cohortlm.cohort.subgroups import Subgroup, parse_subgroups
from cohortlm.cohort.values import declared_keys
from cohortlm.errors import DataError, SpecError
from cohortlm.yamlsafe import load_yaml_file

FeatureType = Literal["numeric", "integer", "binary", "categorical"]
FEATURE_TYPES: tuple[str, ...] = ("numeric", "integer", "binary", "categorical")
OPERATORS: dict[str, Any] = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
#: the featurisers a spec may name; :data:`cohortlm.cohort.featurise.FEATURISERS` maps each to its
#: function (kept apart so that parsing a spec does not import the featurisers and their pandas code)
FEATURISER_NAMES: tuple[str, ...] = ("ra_visits",)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_TOP_KEYS = {
    "name",
    "version",
    "description",
    "intended_use",
    "id_column",
    "timestamp_column",
    "featuriser",
    "features",
    "endpoints",
    "split",
    "rules",
    "subgroups",
}
_FEATURE_KEYS = {
    "name",
    "type",
    "unit",
    "min",
    "max",
    "categories",
    "description",
    "group",
    "max_missing",
    "column",
    "true_values",
    "false_values",
}
_ENDPOINT_KEYS = {"name", "column", "operator", "threshold", "description", "question", "decision_threshold"}
#: An outcome column of text declares what it holds for a case and for a non-case.
_ENDPOINT_KEYS = _ENDPOINT_KEYS | {"true_values", "false_values"}
_SPLIT_KEYS = {"sizes", "seed"}


@dataclass(frozen=True)
class Feature:
    """One input column of the study.

    Attributes:
        name: column name (lower snake case).
        type: numeric, integer, binary (0/1) or categorical.
        unit: unit shown in prompts and reports (``"years"``, ``"mg/L"``).
        min: smallest valid value (numeric and integer).
        max: largest valid value (numeric and integer).
        categories: allowed values (categorical).
        description: what the column means, in words.
        group: feature group used by the feature store (``demographics``...).
        max_missing: largest allowed fraction of missing values, 0 to 1.
        column: the column's name in the data file when it differs from ``name``.
        category_codes: the code each category has in the data file, in the order of
            ``categories`` (integer-coded categories); None when the file holds the labels.
        true_values: what the data file holds for 1 (binary), besides 1 and true.
        false_values: what the data file holds for 0 (binary), besides 0 and false.
    """

    name: str
    type: FeatureType
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str | None = None
    group: str = "features"
    max_missing: float = 0.0
    column: str | None = None
    category_codes: tuple[int | str, ...] | None = None
    true_values: tuple[bool | int | float | str, ...] | None = None
    false_values: tuple[bool | int | float | str, ...] | None = None

    @property
    def source_column(self) -> str:
        """The column holding this feature in the data file."""
        return self.column or self.name

    def categories_as_written(self) -> list[str] | list[int | str] | dict[int | str, str] | None:
        """``categories`` in the form the spec gave: labels, codes, or a code -> label mapping."""
        if self.categories is None:
            return None
        if self.category_codes is None:
            return list(self.categories)
        if all(str(c) == label for c, label in zip(self.category_codes, self.categories, strict=True)):
            return list(self.category_codes)
        return dict(zip(self.category_codes, self.categories, strict=True))


@dataclass(frozen=True)
class Endpoint:
    """A binary outcome: ``column operator threshold`` is a case.

    Attributes:
        name: endpoint name (lower snake case), used in scores and reports.
        column: the source column in the featurised table.
        operator: one of ``>``, ``>=``, ``<``, ``<=``.
        threshold: the cut-off applied to ``column``.
        description: what a case means, in words.
        question: the yes/no question asked of the LLM (derived from the
            description when omitted).
        decision_threshold: optional clinical decision threshold, a risk in (0, 1): a
            patient whose predicted risk is at least this is treated as a case (Table 1's
            operating point for every model, marked on the decision curve). When unset,
            each model's threshold is chosen on data (docs/cohorts.md).
    """

    name: str
    column: str
    operator: str
    threshold: float
    description: str | None = None
    question: str | None = None
    #: what the outcome column holds for a case (``Yes``) besides 1 and true; with false_values
    true_values: tuple[bool | int | float | str, ...] | None = None
    #: what the outcome column holds for a non-case (``No``) besides 0 and false
    false_values: tuple[bool | int | float | str, ...] | None = None
    decision_threshold: float | None = None

    def label(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Binary labels (1 = case) for source values; NaN stays NaN."""
        arr = np.asarray(values, dtype=float)
        out = OPERATORS[self.operator](arr, self.threshold).astype(float)
        out[np.isnan(arr)] = np.nan
        return out

    @property
    def rule_text(self) -> str:
        """The definition as text, e.g. ``das28_esr_2y > 5.1``."""
        return f"{self.column} {self.operator} {self.threshold:g}"


@dataclass(frozen=True)
class SplitSpec:
    """Patient-level split sizes (counts or fractions) and the seed."""

    sizes: Mapping[str, float]
    seed: int = 0

    @property
    def is_fraction(self) -> bool:
        """True when sizes are fractions of the cohort rather than counts."""
        return all(float(v) <= 1.0 for v in self.sizes.values()) and any(
            not float(v).is_integer() for v in self.sizes.values()
        )


@dataclass(frozen=True)
class StudySpec:
    """A validated study: features, endpoints, split and rules.

    Build it with :func:`load_study`; the constructor trusts its arguments.
    """

    name: str
    version: int
    id_column: str
    features: tuple[Feature, ...]
    endpoints: tuple[Endpoint, ...]
    split: SplitSpec
    rules: tuple[str, ...] = ()
    featuriser: str | None = None
    timestamp_column: str | None = None
    description: str | None = None
    #: patient subgroups the report shows and the gate checks (:mod:`cohortlm.cohort.subgroups`)
    subgroups: tuple[Subgroup, ...] = ()
    #: what the model is for, in words (the model card's intended use; a default when unset)
    intended_use: str | None = None
    source: str = field(default="<memory>", compare=False)

    @property
    def feature_names(self) -> list[str]:
        """Feature column names in spec order."""
        return [f.name for f in self.features]

    @property
    def endpoint_names(self) -> list[str]:
        """Endpoint names in spec order."""
        return [e.name for e in self.endpoints]

    @property
    def endpoint_columns(self) -> list[str]:
        """Distinct endpoint source columns in spec order."""
        return list(dict.fromkeys(e.column for e in self.endpoints))

    def feature(self, name: str) -> Feature:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, in the YAML layout (optional keys left out when unset)."""
        feats = []
        for f in self.features:
            d = {k: v for k, v in asdict(f).items() if v is not None and k != "category_codes"}
            if f.categories is not None:
                d["categories"] = f.categories_as_written()
            for key in ("true_values", "false_values"):
                if key in d:
                    d[key] = list(d[key])
            feats.append(d)
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "id_column": self.id_column,
            "features": feats,
            "endpoints": [
                {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(e).items() if v is not None}
                for e in self.endpoints
            ],
            "split": {"sizes": dict(self.split.sizes), "seed": self.split.seed},
            "rules": list(self.rules),
        }
        for key in ("featuriser", "timestamp_column", "description", "intended_use"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.subgroups:
            out["subgroups"] = [g.to_dict() for g in self.subgroups]
        return out

    def with_split(self, sizes: Mapping[str, Any], *, source: str = "split override") -> StudySpec:
        """This spec with other split sizes (same seed), checked as the spec's own ``split`` is.

        Raises:
            SpecError: The sizes are not counts or fractions of train, validation and test.
        """
        return replace(self, split=_parse_split(source, {"sizes": dict(sizes), "seed": self.split.seed}))

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical spec content (not of the file's formatting).

        Bundles record it so that a model is never served against a spec that
        names other features or endpoints.
        """
        # Subgroups and the intended use change what is reported, not what a model reads or
        # predicts: not in the hash (a reworded intended use must not make bundles unservable).
        # Nor an endpoint's decision threshold: it moves an operating point, not a prediction.
        content = {k: v for k, v in self.to_dict().items() if k not in ("subgroups", "intended_use")}
        content["endpoints"] = [
            {k: v for k, v in e.items() if k != "decision_threshold"} for e in content["endpoints"]
        ]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def labels(self, table: pd.DataFrame) -> pd.DataFrame:
        """Binary endpoint labels (float, NaN where the source is missing)."""
        self.check_columns(table, need_endpoints=True)
        return pd.DataFrame({e.name: e.label(table[e.column]) for e in self.endpoints}, index=table.index)

    def check_columns(
        self, table: pd.DataFrame, *, need_endpoints: bool = True, what: str = "the data"
    ) -> None:
        """Raise :class:`DataError` if ``table`` lacks a column the spec names."""
        wanted = [self.id_column, *self.feature_names]
        if need_endpoints:
            wanted += self.endpoint_columns
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            mapped = {f.name: f.source_column for f in self.features if f.column}
            named = [f"{c} (column '{mapped[c]}')" if c in mapped else c for c in missing]
            shown = ", ".join(named[:8]) + (" ..." if len(named) > 8 else "")
            raise DataError(
                f"{what} lacks {len(missing)} column(s) named in study '{self.name}' "
                f"({self.source}): {shown}. If the data calls a feature otherwise, map it in the "
                "spec with column: 'its header'; if the column is absent, the fix is in the data."
            )


# ---------------------------------------------------------------------------- loading


def builtin_studies() -> list[str]:
    """Names of the studies shipped in ``cohortlm/studies``."""
    folder = resources.files("cohortlm") / "studies"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_study_path(study: str | Path) -> Path:
    """A path for ``study``: a YAML file, or the name of a built-in study."""
    path = Path(study)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpecError(f"study file {path} does not exist")
        return path
    builtin = resources.files("cohortlm") / "studies" / f"{study}.yaml"
    if builtin.is_file():
        return Path(str(builtin))
    raise SpecError(f"unknown study '{study}': give a YAML file or one of {', '.join(builtin_studies())}")


def load_study(study: str | Path) -> StudySpec:
    """Load and validate a study spec from a file path or built-in name.

    Raises:
        SpecError: the file is missing, not YAML, or breaks a rule; the
            message names the file and the key.
    """
    path = resolve_study_path(study)
    data = load_yaml_file(path, what="study file")
    return study_from_dict(data, source=str(path))


def _err(source: str, key: str, msg: str) -> SpecError:
    return SpecError(f"{source}: {key}: {msg}")


def _shown(value: Any) -> str:
    """A value for a message: a short string quoted, anything else by its kind (never a dump)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    kinds = {list: "a list", dict: "a mapping", bool: "true/false", type(None): "nothing"}
    for kind, text in kinds.items():
        if isinstance(value, kind):
            return text
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


def _unknown(source: str, where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    extra = sorted((k for k in data if k not in set(allowed)), key=str)
    if extra:
        raise _err(
            source,
            f"{where}{extra[0]}",
            f"unknown key; allowed keys are {', '.join(sorted(allowed))}",
        )


def _name(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _err(source, key, "must be a lower snake_case name such as 'das28_esr'")
    return value


def _number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(source, key, "must be a finite number")
    return float(value)


def _parse_feature(source: str, i: int, raw: Any) -> Feature:
    key = f"features[{i}]"
    if not isinstance(raw, Mapping):
        raise _err(source, key, "must be a mapping with name and type")
    _unknown(source, f"{key}.", raw, _FEATURE_KEYS)
    if "name" not in raw:
        raise _err(source, f"{key}.name", "is required")
    name = _name(source, f"{key}.name", raw["name"])
    key = f"features[{name}]"
    ftype = raw.get("type")
    if not isinstance(ftype, str) or ftype not in FEATURE_TYPES:
        raise _err(source, f"{key}.type", f"must be one of {', '.join(FEATURE_TYPES)}, got {_shown(ftype)}")
    lo = _number(source, f"{key}.min", raw["min"]) if raw.get("min") is not None else None
    hi = _number(source, f"{key}.max", raw["max"]) if raw.get("max") is not None else None
    if ftype in ("binary", "categorical") and (lo is not None or hi is not None):
        raise _err(source, f"{key}.min", f"min/max apply to numeric and integer features, not {ftype}")
    if lo is not None and hi is not None and lo > hi:
        raise _err(source, f"{key}.min", "must not exceed max")
    cats = raw.get("categories")
    codes: tuple[int | str, ...] | None = None
    if ftype == "categorical":
        categories, codes = _parse_categories(source, f"{key}.categories", cats)
    elif cats is not None:
        raise _err(source, f"{key}.categories", "only categorical features have categories")
    else:
        categories = None
    true_values = _parse_values(source, f"{key}.true_values", raw.get("true_values"), ftype)
    false_values = _parse_values(source, f"{key}.false_values", raw.get("false_values"), ftype)
    if (true_values is None) != (false_values is None):
        given, other = ("true_values", "false_values")
        if true_values is None:
            given, other = other, given
        raise _err(source, f"{key}.{other}", f"give {other} too: with {given} alone, the rest is ambiguous")
    if true_values is not None and false_values is not None:
        _check_binary_values(source, key, true_values, false_values)
    column = raw.get("column")
    if column is not None:
        column = _column_name(source, f"{key}.column", column)
    max_missing = _number(source, f"{key}.max_missing", raw.get("max_missing", 0.0))
    if not 0.0 <= max_missing <= 1.0:
        raise _err(source, f"{key}.max_missing", "must lie between 0 and 1")
    group = raw.get("group", "features")
    _name(source, f"{key}.group", group)
    for text_key in ("unit", "description"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise _err(source, f"{key}.{text_key}", "must be a string")
    return Feature(
        name=name,
        type=cast(FeatureType, ftype),
        unit=raw.get("unit"),
        min=lo,
        max=hi,
        categories=categories,
        description=raw.get("description"),
        group=group,
        max_missing=max_missing,
        column=column,
        category_codes=codes,
        true_values=true_values,
        false_values=false_values,
    )


_MAX_COLUMN_CHARS = 200


def _column_name(source: str, key: str, value: Any) -> str:
    """A data file's column name: any header text, without control characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_COLUMN_CHARS:
        raise _err(source, key, f"must be the column's header text (1 to {_MAX_COLUMN_CHARS} characters)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _err(source, key, "must not hold control characters (tabs, line breaks)")
    return value


def _code(value: Any) -> int | str | None:
    """A category code as given: an integer (1, or 1.0) or a non-empty string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _parse_categories(
    source: str, key: str, cats: Any
) -> tuple[tuple[str, ...], tuple[int | str, ...] | None]:
    """Labels and codes from a list of labels, a list of integer codes, or a code -> label mapping."""
    hint = "give a list of labels ([female, male]), of codes ([1, 2, 3]) or a mapping ({1: male, 2: female})"
    if isinstance(cats, Mapping):
        if not cats:
            raise _err(source, key, f"a categorical feature needs categories; {hint}")
        codes = [_code(c) for c in cats]
        if any(c is None for c in codes):
            raise _err(source, key, "each code must be a whole number or a non-empty string")
        if len({type(c) for c in codes}) > 1:
            raise _err(source, key, "codes must be all numbers or all strings")
        labels = list(cats.values())
        if not all(isinstance(v, str) and v.strip() for v in labels):
            raise _err(source, key, "each code maps to a label, a non-empty string such as 'male'")
        if len(set(labels)) != len(labels):
            raise _err(source, key, "two codes map to the same label; merge the codes in the data")
        # A label that is also another category's code would make the featurised table ambiguous.
        code_text = {str(c): str(label) for c, label in zip(codes, labels, strict=True)}
        clash = [lab for lab in labels if lab in code_text and code_text[lab] != lab]
        if clash:
            raise _err(source, key, "a label must not be another category's code")
        return tuple(labels), tuple(c for c in codes if c is not None)
    if not isinstance(cats, list) or not cats:
        raise _err(source, key, f"a categorical feature needs categories; {hint}")
    if all(isinstance(c, str) for c in cats):
        if len(set(cats)) != len(cats):
            raise _err(source, key, "categories must be distinct")
        return tuple(cats), None
    codes = [_code(c) for c in cats]
    if any(c is None or isinstance(c, str) for c in codes):
        raise _err(source, key, f"mix of numbers and text; {hint}")
    if len(set(codes)) != len(codes):
        raise _err(source, key, "categories must be distinct")
    ints = tuple(c for c in codes if c is not None)
    return tuple(str(c) for c in ints), ints


def _parse_values(
    source: str, key: str, values: Any, ftype: str
) -> tuple[bool | int | float | str, ...] | None:
    if values is None:
        return None
    if ftype != "binary":
        raise _err(source, key, f"only binary features have true_values/false_values, not {ftype}")
    if not isinstance(values, list) or not values:
        raise _err(source, key, "must be a non-empty list such as [yes, 'Y'] or [1]")
    out: list[bool | int | float | str] = []
    for v in values:
        if isinstance(v, bool) or (isinstance(v, str) and v.strip()):
            out.append(v)
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out.append(int(v) if float(v).is_integer() else float(v))
        else:
            raise _err(source, key, "each value must be a number, true/false or a non-empty string")
    return tuple(out)


def _binary_keys(values: Iterable[Any]) -> set[tuple[str, Any]]:
    """The data values a list of true/false values matches (see :func:`cohortlm.cohort.values.value_key`)."""
    return declared_keys(values)


def _check_binary_values(
    source: str, key: str, true_values: tuple[Any, ...], false_values: tuple[Any, ...]
) -> None:
    yes, no = _binary_keys(true_values), _binary_keys(false_values)
    if yes & no:
        raise _err(source, f"{key}.true_values", "a value is both in true_values and in false_values")
    # The featurised table holds 0/1: 1 meaning "no" (or 0 "yes") could not be told apart from it.
    if no & _binary_keys([1, True]):
        raise _err(
            source,
            f"{key}.false_values",
            "1 (or true) cannot mean no: the featurised table writes yes as 1. "
            "The fix is in the data: recode the column so that 1 means yes (e.g. 1 -> 0, 2 -> 1)",
        )
    if yes & _binary_keys([0, False]):
        raise _err(
            source,
            f"{key}.true_values",
            "0 (or false) cannot mean yes: the featurised table writes no as 0. "
            "The fix is in the data: recode the column so that 0 means no",
        )


def _parse_endpoint(source: str, i: int, raw: Any) -> Endpoint:
    key = f"endpoints[{i}]"
    if not isinstance(raw, Mapping):
        raise _err(source, key, "must be a mapping with name, column, operator and threshold")
    _unknown(source, f"{key}.", raw, _ENDPOINT_KEYS)
    for req in ("name", "column"):
        if req not in raw:
            raise _err(source, f"{key}.{req}", "is required")
    name = _name(source, f"{key}.name", raw["name"])
    key = f"endpoints[{name}]"
    column = _column_name(source, f"{key}.column", raw["column"])
    if ("operator" in raw) != ("threshold" in raw):
        missing = "threshold" if "operator" in raw else "operator"
        raise _err(
            source,
            f"{key}.{missing}",
            "give operator and threshold together, or neither when the column is the outcome "
            "(0/1, true/false)",
        )
    # Neither: the column is the outcome itself, 1 or true a case.
    op = raw.get("operator", ">=")
    if not isinstance(op, str) or op not in OPERATORS:
        raise _err(source, f"{key}.operator", f"must be one of {', '.join(OPERATORS)}, got {_shown(op)}")
    threshold = _number(source, f"{key}.threshold", raw.get("threshold", 1))
    true_values, false_values = _endpoint_values(source, key, raw)
    for text_key in ("description", "question"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise _err(source, f"{key}.{text_key}", "must be a string")
    decision = raw.get("decision_threshold")
    if decision is not None:
        decision = _number(source, f"{key}.decision_threshold", decision)
        if not 0.0 < decision < 1.0:
            raise _err(
                source,
                f"{key}.decision_threshold",
                f"must be a risk strictly between 0 and 1 (e.g. 0.10 to treat above 10 %), got {decision:g}",
            )
    return Endpoint(
        name=name,
        column=column,
        operator=op,
        threshold=threshold,
        description=raw.get("description"),
        question=raw.get("question"),
        true_values=true_values,
        false_values=false_values,
        decision_threshold=decision,
    )


def _endpoint_values(
    source: str, key: str, raw: Mapping[str, Any]
) -> tuple[tuple[bool | int | float | str, ...] | None, tuple[bool | int | float | str, ...] | None]:
    """An outcome column's declared yes/no values (``true_values: [Yes], false_values: [No]``), or None."""
    true_values = _parse_values(source, f"{key}.true_values", raw.get("true_values"), "binary")
    false_values = _parse_values(source, f"{key}.false_values", raw.get("false_values"), "binary")
    if (true_values is None) != (false_values is None):
        given, other = (
            ("true_values", "false_values") if false_values is None else ("false_values", "true_values")
        )
        raise _err(source, f"{key}.{other}", f"give {other} too: with {given} alone, the rest is ambiguous")
    if true_values is None or false_values is None:
        return None, None
    # The column is the outcome itself (1 = a case): any other cut-off would mean something else.
    if raw.get("operator", ">=") != ">=" or raw.get("threshold", 1) != 1:
        raise _err(
            source,
            f"{key}.true_values",
            "true_values/false_values make the column the outcome itself: leave out operator and threshold",
        )
    _check_binary_values(source, key, true_values, false_values)
    return true_values, false_values


def _parse_split(source: str, raw: Any) -> SplitSpec:
    if not isinstance(raw, Mapping):
        raise _err(source, "split", "must be a mapping with sizes and seed")
    _unknown(source, "split.", raw, _SPLIT_KEYS)
    sizes = raw.get("sizes")
    if not isinstance(sizes, Mapping):
        raise _err(source, "split.sizes", "must map train, validation and test to counts or fractions")
    _unknown(source, "split.sizes.", sizes, SPLIT_NAMES)
    missing = [s for s in SPLIT_NAMES if s not in sizes]
    if missing:
        raise _err(source, f"split.sizes.{missing[0]}", "is required")
    parsed = {s: _number(source, f"split.sizes.{s}", sizes[s]) for s in SPLIT_NAMES}
    if any(v < 0 for v in parsed.values()):
        raise _err(source, "split.sizes", "sizes must not be negative")
    if parsed["train"] <= 0 or parsed["test"] <= 0:
        raise _err(source, "split.sizes", "train and test must not be empty")
    spec = SplitSpec(sizes=parsed, seed=0)
    if spec.is_fraction:
        if not math.isclose(sum(parsed.values()), 1.0, abs_tol=1e-9):
            raise _err(
                source, "split.sizes", f"fractions must add up to 1, they add up to {sum(parsed.values()):g}"
            )
    elif not all(v.is_integer() for v in parsed.values()):
        raise _err(source, "split.sizes", "give either whole counts or fractions that add up to 1")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _err(source, "split.seed", "must be a non-negative integer")
    return SplitSpec(sizes=parsed, seed=seed)


def study_from_dict(data: Any, *, source: str = "<memory>") -> StudySpec:
    """Validate plain data (parsed YAML) into a :class:`StudySpec`.

    Raises:
        SpecError: naming the source and the key that breaks a rule.
    """
    try:
        return _study_from_dict(data, source=source)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # Every key is checked above; this is the net under a check that was forgotten.
        raise SpecError(
            f"{source}: a key holds a value of the wrong kind ({type(exc).__name__}); "
            "compare the file with cohortlm/studies/ra_iorra.yaml"
        ) from None


def _study_from_dict(data: Any, *, source: str) -> StudySpec:
    """The spec from plain data, each key checked in turn: top level, lists, names, the optional keys."""
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: the study must be a YAML mapping with name, features, endpoints and split"
        )
    _unknown(source, "", data, _TOP_KEYS)
    for req in ("name", "id_column", "features", "endpoints", "split"):
        if req not in data:
            raise _err(source, req, "is required")
    name = _name(source, "name", data["name"])
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _err(source, "version", "must be a positive integer")
    id_column = _name(source, "id_column", data["id_column"])
    raw_features = data["features"]
    if not isinstance(raw_features, list) or not raw_features:
        raise _err(source, "features", "must be a non-empty list")
    features = tuple(_parse_feature(source, i, f) for i, f in enumerate(raw_features))
    raw_endpoints = data["endpoints"]
    if not isinstance(raw_endpoints, list) or not raw_endpoints:
        raise _err(source, "endpoints", "must be a non-empty list")
    endpoints = tuple(_parse_endpoint(source, i, e) for i, e in enumerate(raw_endpoints))
    _check_column_names(source, id_column, features, endpoints)
    timestamp_column = data.get("timestamp_column")
    if timestamp_column is not None:
        _name(source, "timestamp_column", timestamp_column)
    featuriser = _parse_featuriser(source, data.get("featuriser"))
    rules = _parse_rules(source, data.get("rules") or [])
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise _err(source, "description", "must be a string")
    intended_use = data.get("intended_use")
    if intended_use is not None and (not isinstance(intended_use, str) or not intended_use.strip()):
        raise _err(source, "intended_use", "must be a non-empty text saying what the model is for")
    return StudySpec(
        name=name,
        version=version,
        id_column=id_column,
        features=features,
        endpoints=endpoints,
        split=_parse_split(source, data["split"]),
        rules=tuple(rules),
        featuriser=featuriser,
        timestamp_column=timestamp_column,
        description=description,
        subgroups=parse_subgroups(source, data.get("subgroups"), features),
        intended_use=intended_use.strip() if intended_use is not None else None,
        source=source,
    )


def _check_column_names(
    source: str, id_column: str, features: tuple[Feature, ...], endpoints: tuple[Endpoint, ...]
) -> None:
    """One name per feature and endpoint, one column per input, and no input that is also an outcome."""
    seen: dict[str, str] = {id_column: "id_column"}
    for f in features:
        if f.name in seen:
            raise _err(source, f"features[{f.name}].name", f"duplicate name (also used by {seen[f.name]})")
        seen[f.name] = f"features[{f.name}]"
    for f in features:
        if f.column is not None and f.column != f.name:
            if f.column in seen:
                raise _err(
                    source,
                    f"features[{f.name}].column",
                    f"'{f.column}' is also {seen[f.column]}; one column feeds one feature",
                )
            seen[f.column] = f"features[{f.name}].column"
    ep_seen: set[str] = set()
    for e in endpoints:
        if e.name in ep_seen:
            raise _err(source, f"endpoints[{e.name}].name", "duplicate endpoint name")
        ep_seen.add(e.name)
        if e.column in seen:
            raise _err(
                source,
                f"endpoints[{e.name}].column",
                f"the outcome column is also {seen[e.column]}: an input must not be the outcome",
            )


def _parse_featuriser(source: str, featuriser: Any) -> Any:
    """The featuriser's name, one of :data:`FEATURISER_NAMES`, or None."""
    if featuriser is not None and (not isinstance(featuriser, str) or featuriser not in FEATURISER_NAMES):
        raise _err(
            source,
            "featuriser",
            f"unknown featuriser {_shown(featuriser)}; known: {', '.join(FEATURISER_NAMES)}",
        )
    return featuriser


def _parse_rules(source: str, rules: Any) -> list[str]:
    """The rule names, each one of :data:`cohortlm.cohort.rules.RULES`."""
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise _err(source, "rules", "must be a list of rule names")
    from cohortlm.cohort.rules import RULES

    for r in rules:
        if r not in RULES:
            raise _err(source, "rules", f"unknown rule {_shown(r)}; known: {', '.join(sorted(RULES))}")
    return rules
