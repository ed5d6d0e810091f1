"""The throughput benchmark's CPU smoke mode: it runs and its JSON has every field (no timings
are asserted: this only checks the benchmark still works against the current engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sam2")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bench")
    out = work / "tiny.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            "--tiny",
            "--device",
            "cpu",
            "--images",
            "1",
            "--json",
            str(out),
            "--workdir",
            str(work / "w"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "end to end" in proc.stdout
    return json.loads(out.read_text())


def positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def test_top_level(report: dict) -> None:
    assert report["mode"] == "tiny"
    assert report["device"].startswith("cpu")
    assert report["peak_tflops"] is None  # no FLOP floor on a CPU
    assert report["peak_gpu_memory_gib"] == "n/a"
    assert report["settings"]["sizes"] == ["1024x768", "4000x3000"]
    assert all(positive(report[k]) for k in ("build_s", "load_s", "total_s"))
    vlm = report["models"]["vlm"]
    assert positive(vlm["params"]) and 0 < vlm["lm_params"] <= vlm["params"]


def test_segmentation_per_size(report: dict) -> None:
    rows = report["segmentation"]["paper"]
    assert set(rows) == {"1024x768", "4000x3000"}
    for row in rows.values():
        for key in ("fast_s_per_image", "stock_s_per_image", "speedup"):
            assert positive(row[key]), key
        assert row["fast_masks_per_image"] == row["stock_masks_per_image"]


def test_scoring(report: dict) -> None:
    s = report["scoring"]
    for key in (
        "views_per_s",
        "s_per_view",
        "prompt_tokens_per_view",
        "flops_per_view",
        "naive_s_per_view",
        "naive_views_per_s",
        "speedup",
    ):
        assert positive(s[key]), key
    assert isinstance(s["batch_size"], int) and s["views"] > 0
    assert s["prompt_tokens_per_view"] > 576  # Janus' 576 image tokens plus the text
    assert s["lm_flop_floor_fraction"] is None and s["flop_floor_s_per_view"] is None
    assert s["flops_per_view"] == pytest.approx(2 * s["lm_params"] * s["prompt_tokens_per_view"])


def test_end_to_end_and_naive_baseline(report: dict) -> None:
    for _size, row in report["end_to_end"].items():
        pipe, naive = row["pipeline"], row["naive"]
        assert pipe["images"] == 1 and naive["images"] == 1
        assert positive(pipe["images_per_s"]) and positive(pipe["views_per_s"])
        assert pipe["views_per_image"] >= 1 and naive["views_per_image"] >= 0
        assert isinstance(pipe["failed_images"], int)
        assert positive(naive["images_per_s"]) and positive(row["speedup"])
