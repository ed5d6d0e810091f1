"""The documented example plugin package (docs/plugins.md) installs, registers by entry point, and scores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from helpers import pip_install_target
from iqa_core import load_recipe, registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "iqa-sharpness"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example (no deps, no isolation) into a private target on sys.path."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("example") / EXAMPLE.name  # setuptools writes build/ beside it
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip_install_target(source, target)
    sys.path.insert(0, str(target))
    registry.refresh()
    yield target
    sys.path.remove(str(target))
    registry.refresh()


def test_example_scorer_is_found_by_entry_point(installed: Path) -> None:
    entry = next(e for e in registry.entries("scorers") if e.name == "sharpness")
    assert entry.distribution == "iqa-sharpness"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", "from iqa_core.cli import main; main()", "plugins", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    assert rows[("scorer", "sharpness")]["distribution"] == "iqa-sharpness"


def test_example_scorer_ranks_blur_below_sharp(installed: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sharp = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    sharp.save(tmp_path / "sharp.png")
    sharp.filter(ImageFilter.GaussianBlur(4)).save(tmp_path / "blurred.png")
    pipeline = load_recipe({"scorers": [{"name": "sharpness"}], "decode": "expected", "runtime": {"store": None}})
    results = {Path(r.path).name: r for r in pipeline.score_many([tmp_path])}
    assert results["sharp.png"].score > results["blurred.png"].score
    assert 1.0 <= results["blurred.png"].score <= 7.0


def test_example_passes_its_own_tests_with_the_conformance_check(installed: Path) -> None:
    """The example's tests call iqa_core.testing.check_scorer, as a plugin author would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    tests = EXAMPLE / "tests"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests)],
        capture_output=True,
        text=True,
        env=env,
        cwd=installed,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout
