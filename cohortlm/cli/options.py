"""Options that several commands take, each declared once: the same flag, help and meaning everywhere,
and the two halves of the bundle-signing key pair, side by side.

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

# ``cohortlm signing-key`` writes both files: promotion signs with the private key, the server
# verifies with the public one. Each is also read from its environment variable (a mounted Secret).
SigningKey = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        envvar="COHORTLM_SIGNING_KEY",
        help="Private key (PEM) to sign the promoted copy with (MANIFEST.sig).",
    ),
]
VerifyKey = Annotated[
    Path | None,
    typer.Option(
        "--verify-key",
        envvar="COHORTLM_VERIFY_KEY",
        help="Public key (PEM): serve only bundles signed with its private key at promotion.",
    ),
]
