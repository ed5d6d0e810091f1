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
SIZES = ["640x480", "1600x1200"]
# the benchmark runs every stage once in its fixture: minutes on a busy 2-core machine
pytestmark = pytest.mark.timeout(900)


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
            "--sizes",
            "640x480,1600x1200",  # two sizes (one above SAM2's max_side), small enough to decode fast
            "--threads",
            "1",  # a shared CI machine: more threads than free cores only adds waiting
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
    return {**json.loads(out.read_text()), "_stdout": proc.stdout}


def positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def test_top_level(report: dict) -> None:
    assert report["mode"] == "tiny"
    assert report["device"].startswith("cpu")
    assert report["peak_tflops"] is None  # no FLOP floor on a CPU
    assert report["memory"] == "cpu_peak_rss"
    assert all(positive(v) for v in report["peak_memory_gib"].values())
    assert set(report["peak_memory_gib"]) == {"segmentation", "scoring", "naive", "end_to_end"}
    assert report["settings"]["sizes"] == SIZES
    assert all(positive(report[k]) for k in ("build_s", "total_s"))
    vlms = report["models"]["vlms"]
    assert {name: vlm["plugin"] for name, vlm in vlms.items()} == {"janus": "janus_pro", "qwen25_vl": "hf_vlm"}
    for vlm in vlms.values():
        assert positive(vlm["params"]) and 0 < vlm["lm_params"] <= vlm["params"]


def test_segmentation_per_size_and_setting(report: dict) -> None:
    assert set(report["segmentation"]) == {"paper", "permissive"}
    for rows in report["segmentation"].values():
        assert list(rows) == SIZES
        for row in rows.values():
            for key in ("fast_s_per_image", "stock_s_per_image", "speedup", "fast_model_s_per_image"):
                assert positive(row[key]), key
            assert 0 < row["fast_busy_fraction"] <= 1
            assert row["fast_masks_per_image"] == row["stock_masks_per_image"]
    # permissive: every candidate passes the IoU and stability filters, so more masks survive
    for size in SIZES:
        paper, permissive = report["segmentation"]["paper"][size], report["segmentation"]["permissive"][size]
        assert permissive["fast_masks_per_image"] >= paper["fast_masks_per_image"]


@pytest.mark.parametrize("name", ["janus", "qwen25_vl"])
def test_scoring(report: dict, name: str) -> None:
    s = report["scoring"][name]
    for key in (
        "views_per_s",
        "s_per_view",
        "prompt_tokens_per_view",
        "flops_per_view",
        "naive_s_per_view",
        "naive_views_per_s",
        "speedup",
        "peak_memory_gib",
    ):
        assert positive(s[key]), key
    assert 0 < s["busy_fraction"] <= 1
    assert s["views"] == 9  # one image of the real workload: whole + 7 objects + complement
    assert s["lm_flop_floor_fraction"] is None and s["flop_floor_s_per_view"] is None
    assert s["flops_per_view"] == pytest.approx(2 * s["lm_params"] * s["prompt_tokens_per_view"])
    split = s["split"]
    parts = ("processor", "vision", "language_model", "other")
    assert all(positive(split[f"{part}_s_per_view"]) for part in parts if part != "other")
    assert sum(split["shares"][part] for part in parts) == pytest.approx(1.0, abs=0.02)
    assert 0 <= split["padding"] < 1


def test_scoring_token_counts(report: dict) -> None:
    assert report["scoring"]["janus"]["prompt_tokens_per_view"] > 576  # 576 image tokens + the text
    lo, hi = report["scoring"]["qwen25_vl"]["prompt_tokens_range"]
    assert lo < hi  # Qwen2.5-VL's token count follows each view's size
    # the scorer's length buckets: Janus prompts all have one length, Qwen2.5-VL's do not
    assert report["scoring"]["janus"]["split"]["buckets"] == 1
    assert report["scoring"]["qwen25_vl"]["split"]["buckets"] > 1


def test_end_to_end_has_the_real_workload_and_the_naive_baseline(report: dict) -> None:
    assert list(report["end_to_end"]) == SIZES
    for row in report["end_to_end"].values():
        for name in ("sam2", "sam2_permissive", "no_sam2"):
            pipe = row[name]
            assert pipe["images"] == 1 and pipe["failed_images"] == 0, pipe["errors"]
            assert pipe["views_per_image"] == 9
            assert positive(pipe["images_per_s"]) and positive(pipe["views_per_s"])
            assert 0 < pipe["busy_fraction"] <= 1
        naive = row["naive"]
        assert naive["images"] == 1 and naive["views_per_image"] == 9
        assert positive(naive["images_per_s"]) and positive(row["speedup"])


def test_issue_table_names_every_row_and_defers_gpu_targets(report: dict) -> None:
    rows = report["issue_rows"]
    assert len(rows) == 11
    assert all(row["met"] is None for row in rows)  # tiny CPU figures are not judged against GPU targets
    floor = [row for row in rows if "FLOP-floor" in row["row"]]
    assert len(floor) == 2 and all(row["value"] is None for row in floor)  # no peak FLOP/s on a CPU
    assert all(positive(row["value"]) for row in rows if row not in floor)
    assert "needs --device cuda" in report["_stdout"]


@pytest.mark.parametrize("size", [(1024, 768), (4000, 3000), (300, 1000)])
def test_fixed_regions_give_nine_views(size: tuple[int, int]) -> None:
    import numpy as np

    from benchmarks.regions import FixedRegions
    from iqa_core.regions import build_regions

    w, h = size
    masks = FixedRegions(None, max_side=1024).segment(np.zeros((h, w, 3), dtype=np.uint8))
    assert len(masks) == 7 and max(masks[0].shape) == min(1024, max(w, h))
    regions = build_regions(masks, (w, h), 0.01, True)
    assert [r.kind for r in regions].count("object") == 7
    assert [r.kind for r in regions] == ["global"] + ["object"] * 7 + ["complement"]
    fractions = sorted(float(m.mean()) for m in masks)
    assert fractions[0] > 0.01 and fractions[-1] > 0.7  # just above the threshold .. most of the image
