"""A run killed with SIGKILL mid-stream resumes with no lost and no duplicated rows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import BrightnessScorer, recipe, write_images
from iqa_core.pipeline import load_recipe

TESTS = Path(__file__).resolve().parent.parent


class SlowBrightness(BrightnessScorer):
    """Slow enough to be killed in the middle of a run."""

    def score(self, views, standard):
        time.sleep(0.1)
        return super().score(views, standard)


SCRIPT = """
import json, sys
from iqa_core.pipeline import load_recipe
pipe = load_recipe(json.loads(sys.argv[1]))
pipe.score_many([sys.argv[2]], on_result=lambda r: print(r.path, flush=True))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_after_sigkill(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 10)  # 10 distinct contents
    store = tmp_path / "s.sqlite"
    data = recipe(
        store,
        segmenter={"name": "helpers:QuadrantSegmenter"},
        scorers=[{"name": f"{__name__}:SlowBrightness", "params": {"batch_size": 3}}],
    )
    data["runtime"].update(chunk_images=2, allow_imports=True)  # helpers and this module are not installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "core")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(data), str(tmp_path / "imgs")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    done = [proc.stdout.readline() for _ in range(4)]  # four images finished, more in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(line.strip() for line in done)
    with sqlite3.connect(store) as db:
        stored = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert 4 <= stored < 10

    resumed = load_recipe(data)
    results = resumed.score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results) and len(results) == 10
    assert resumed.stats["results_cached"] == stored
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT recipe, image FROM results").fetchall()
    assert len(rows) == 10 and len(set(rows)) == 10
    fresh = load_recipe({**data, "runtime": {"store": None, "allow_imports": True}}).score_many([tmp_path / "imgs"])
    assert [r.score for r in results] == pytest.approx([r.score for r in fresh])
