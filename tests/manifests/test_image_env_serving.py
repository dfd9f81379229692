"""The serving image's Python environment imports what runs in it."""

from __future__ import annotations

import pytest
from image_env import check_image_environment


@pytest.mark.slow
def test_the_serving_image_environment_imports_what_runs_in_it(tmp_path_factory):
    check_image_environment("Dockerfile.serving", tmp_path_factory)
