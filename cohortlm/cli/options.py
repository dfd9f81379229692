"""Options that several commands take, each declared once: the same flag, help and meaning everywhere.

A command names one as its parameter's type and gives the default after it
(``store: ModelStore = None``); typer reads the flag and help from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Study = Annotated[str, typer.Option("--study", help="Study name or YAML file.")]
CohortTable = Annotated[
    Path | None,
    typer.Option("--data", help="Featurised table (.parquet/.csv); default: the synthetic RA cohort."),
]
ModelStore = Annotated[
    Path | None, typer.Option("--store", help="Model store (default: $COHORTLM_MODEL_STORE or ./models).")
]
