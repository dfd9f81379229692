"""Fine-tune checkpoints: LoRA weights, optimizer, scheduler, RNG states and step, written atomically.

A run killed at any point resumes from the last checkpoint and reaches the same
adapter: the data order is a function of the seed and the epoch, and the RNG
states travel with the weights. Each checkpoint carries the run's key (a hash of
the config, base model and training data), so a folder holding another run's
checkpoint is refused rather than resumed.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cohortlm.errors import UsageError

#: the checkpoint's folder inside a fine-tune's output folder
CHECKPOINT_DIR = "checkpoint"


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, *, model: Any, optimizer: Any, scheduler: Any, step: int, key: str) -> None:
    """Write LoRA weights, optimizer, scheduler, RNG states and step atomically."""
    import torch

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "trainable": _trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "step": step,
            "key": key,
        },
        tmp / "state.pt",
    )
    (tmp / "step.json").write_text(json.dumps({"step": step, "key": key}))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, *, model: Any, optimizer: Any, scheduler: Any, key: str) -> int:
    """Restore a checkpoint; return its step (0 when there is none).

    Raises:
        UsageError: the checkpoint belongs to another configuration or data.
    """
    import torch

    state_path = folder / "state.pt"
    if not state_path.is_file():
        return 0
    # weights_only=False: the RNG states are numpy/python objects; the file is our own
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    if state.get("key") != key:
        raise UsageError(
            f"{folder} holds a checkpoint of another configuration, base model or training data; "
            "use another --out folder, or --no-resume to start over"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"])
