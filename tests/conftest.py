"""Shared fixtures: the test components registered in-process, and their recorder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# The suite never reaches a model hub; offline, huggingface_hub fails at once instead of
# waiting on the network (it reads this when first imported, after this file).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import yaml

from helpers import RECORDER, BrightnessScorer, QuadrantSegmenter, Recorder, recipe
from iqa_core import registry


@pytest.fixture
def test_plugins() -> Iterator[Recorder]:
    """Register ``test_brightness`` (scorer) and ``test_quadrants`` (segmenter); yield the recorder."""
    registry.register("scorers", "test_brightness", BrightnessScorer)
    registry.register("segmenters", "test_quadrants", QuadrantSegmenter)
    RECORDER.reset()
    try:
        yield RECORDER
    finally:
        registry.unregister("scorers", "test_brightness")
        registry.unregister("segmenters", "test_quadrants")
        RECORDER.reset()


def pytest_configure(config: pytest.Config) -> None:
    # pycocotools' decode under NumPy 2 warns about __array__(copy=...): not ours to fix
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    """A recipe file of the test plugins, its store in ``tmp_path``."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path / "store.sqlite")))
    return path
