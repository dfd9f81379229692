"""What a benchmark result was measured on (written next to every LLM timing)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def describe_machine() -> dict[str, Any]:
    """Python, platform, cores, torch build and threads, GPU, load average at the time."""
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg(),
    }
