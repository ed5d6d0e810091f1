"""The scale benchmark's tiny mode: it runs locally and on Ray, every run has its figures, and
the rows it streams are the same whichever executor scored them or whether they came from the
store (no timings are asserted)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
TINY = (60, 120)
FIGURES = ("seconds", "images_per_s", "peak_rss_mb", "store_mb")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("scale")
    out = work / "tiny.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--tiny", "--json", str(out), "--workdir", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), work


def test_every_run_has_its_figures(bench: tuple[dict, Path]) -> None:
    report, _ = bench
    assert report["mode"] == "tiny" and report["settings"]["sizes"] == list(TINY)
    assert report["machine"]["cpu_count"] == os.cpu_count()
    runs = {(r["executor"], r["n"], r["run"]): r for r in report["runs"]}
    assert set(runs) == {(e, n, run) for e in ("local", "ray") for n in TINY for run in ("first", "cached")}
    for (_, n, run), r in runs.items():
        assert "error" not in r, r.get("error")
        assert r["images"] == r["output_rows"] == n and r["failed"] == 0
        assert all(r[k] > 0 for k in FIGURES), r
        if run == "first":
            assert r["views_scored"] == n and r["results_cached"] == 0  # one whole-image view per image
            assert 0 < r["forward_s"] <= r["seconds"] and r["efficiency"] == pytest.approx(
                r["forward_s"] / r["seconds"], abs=2e-3
            )
        else:
            assert r["views_scored"] == 0 and r["results_cached"] == n and r["efficiency"] == 0
    for key in ("images_per_s", "peak_rss_mb"):
        assert set(report["spread"][key]) == {"local/first", "local/cached", "ray/first", "ray/cached"}
        assert all(v is not None and v >= 0 for v in report["spread"][key].values())


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("n", TINY)
def test_streamed_rows_agree_across_executors_and_the_store(bench: tuple[dict, Path], n: int) -> None:
    _, work = bench
    manifest = _rows(work / f"manifest-{n}.csv")
    reference = _rows(work / f"out-local-{n}-first.csv")
    assert [(r["path"], r["id"]) for r in reference] == [(m["path"], m["id"]) for m in manifest]
    assert len({r["score"] for r in reference}) > 1  # scores follow the pixels, not a constant
    for executor in ("local", "ray"):
        for run in ("first", "cached"):
            assert _rows(work / f"out-{executor}-{n}-{run}.csv") == reference, (executor, run)
