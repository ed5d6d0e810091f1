"""`iqa demo`: tiny random models and generated images through run, show and eval, offline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

for module in ("torch", "transformers", "sam2", "matplotlib"):
    pytest.importorskip(module)

from iqa_core.cli import cli  # noqa: E402
from iqa_core.commands import WARNING  # noqa: E402
from iqa_core.demo import CAVEAT  # noqa: E402


def test_demo_runs_every_step_and_says_the_scores_are_meaningless(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"note: {WARNING}")
    assert "every score above is meaningless" in res.stdout
    for step in ("$ iqa run -r", "$ iqa show", "$ iqa eval -r"):
        assert step in res.stdout
    with (out / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["error"] == "" and 1.0 <= float(r["score"]) <= 7.0 for r in rows)
    assert (out / "regions.png").stat().st_size > 0 and (out / "scores.regions.csv").is_file()
    # a figure cut out of the terminal still says its models are random
    figures = [out / "regions.svg", *sorted((out / "eval" / "figures").glob("*.svg"))]
    assert len(figures) >= 2 and all(CAVEAT in f.read_text() for f in figures)
    (row,) = json.loads((out / "eval" / "results.json").read_text())["rows"]
    assert row["n"] == 6 and row["n_failed"] == 0 and row["scorer_calls"] == 0  # eval reads run's stored scores
    assert (out / "images" / "mos.csv").read_text().startswith("path,mos\nclean.png,4.6\n")
