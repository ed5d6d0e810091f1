"""Prompt-following (share of views whose top token was a level label) in `iqa run` / `iqa eval`."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from helpers import BrightnessScorer, recipe, write_images
from iqa_core import following
from iqa_core.api import LevelProbs
from iqa_core.cli import cli

pytestmark = pytest.mark.usefixtures("test_plugins")


class _EveryFourth(BrightnessScorer):
    """Says the model's top token was a level label for every fourth view only."""

    def score(self, views, standard):
        levels = super().score(views, standard)
        levels.top_is_level = np.arange(len(views)) % 4 == 0
        return levels


SCORER = f"{__name__}:_EveryFourth"


def _recipe(tmp_path: Path, store: Path | None, **overrides) -> Path:
    path = tmp_path / "r.yaml"
    data = recipe(store, scorers=[{"name": SCORER, "params": {"batch_size": 4}}], **overrides)
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    path.write_text(yaml.safe_dump(data))
    return path


def test_counts_and_fractions_per_scorer():
    stats: Counter[str] = Counter()
    probs = np.full((4, 2), 0.5)
    following.count(stats, "a", LevelProbs(probs, (1.0, 2.0), np.array([True, False, True, True])))
    following.count(stats, "b", LevelProbs(probs, (1.0, 2.0), np.array([False, False, True, False])))
    following.count(stats, "c", LevelProbs(probs, (1.0, 2.0)))  # no diagnostic (e.g. CLIP-IQA)
    assert following.fractions(stats) == {"a": 0.75, "b": 0.25}
    (line,) = following.warnings(following.fractions(stats))
    assert line.startswith("warning: scorer 'b': ") and "25%" in line and "chat template" in line


def test_run_reports_the_share_and_warns_below_half(tmp_path: Path):
    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    # the second recipe decodes differently: new results, every view score from the store
    for decode in ("expected", "argmax"):
        res = CliRunner().invoke(
            cli, ["run", "-r", str(_recipe(tmp_path, store, decode=decode)), str(tmp_path / "imgs")]
        )
        assert res.exit_code == 0, res.output
        assert "prompt-following (views whose top token was a level label): " in res.stderr
        warning = [line for line in res.stderr.splitlines() if "warning: scorer" in line]
        assert len(warning) == 1 and "_EveryFourth" in warning[0]
    assert "12 view scores came from the store" in res.stderr


def test_eval_writes_the_share_into_results_json(tmp_path: Path):
    images = write_images(tmp_path / "imgs", 4)
    table = tmp_path / "mos.csv"
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "mos"], *([f"imgs/{p.name}", i] for i, p in enumerate(images))])
    out = tmp_path / "out"
    args = ["eval", "-r", str(_recipe(tmp_path, None)), "-d", f"csv={table}", "-o", str(out), "--no-store"]
    res = CliRunner().invoke(cli, [*args, "--no-figures"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    ((label, share),) = row["prompt_following"].items()
    assert "_EveryFourth" in label and 0.2 < share < 0.35
    assert "warning: scorer" in res.stderr and label in res.stderr
