"""`iqa run` end to end on tiny random models of the real architectures (CPU, offline).

The LLM-IQA recipe shape (SAM2 -> Algorithm 1 -> bbox + whole views -> two MLLMs ->
mix-grained -> ensemble) runs through the CLI on a folder of generated images plus one
corrupt file; then the same command again, through the installed console script in a
subprocess, must find everything in the store and call no model. CLIP-IQA runs end to
end on the tiny CLIP. Weights are random, so only ranges and plumbing are asserted.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sam2")
pytest.importorskip("open_clip")

from iqa_core.cli import cli
from iqa_plugins.testing import tiny_vlm
from iqa_plugins.testing.tiny_clip import build_tiny_clip
from iqa_plugins.testing.tiny_sam2 import PERMISSIVE, TINY_SIZE, build_tiny_sam2

LABELS = ("janus", "qwen2_vl")
SUMMARY = re.compile(
    r"(?P<scored>\d+) of (?P<total>\d+) images scored, (?P<failed>\d+) failed; "
    r"(?P<cached>\d+) results and \d+ view scores came from the store, "
    r"(?P<views>\d+) views scored in (?P<calls>\d+) scorer calls"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def images(root: Path) -> Path:
    """Three small images with shapes and edges (different sizes) and one corrupt .jpg."""
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(72, 96), (80, 80), (64, 112)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 60 * i)], -1).astype(np.uint8)
        img[h // 4 : h // 2, w // 5 : w // 2] = (230, 40, 40)
        img[h // 2 :, w // 2 : w - 4] = (20, 20, 200)
        img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return folder


@pytest.fixture(scope="module")
def llm_iqa_recipe(root: Path) -> Path:
    """The llm_iqa.yaml shape on tiny SAM2 hiera-tiny + tiny Janus + tiny Qwen2-VL."""
    models = root / "models"
    sam = build_tiny_sam2(models / "sam2", image_size=TINY_SIZE)
    janus = tiny_vlm.build_janus(models / "janus")
    qwen = tiny_vlm.build_qwen2_vl(models / "qwen2_vl")
    recipe = {
        "description": "tiny LLM-IQA",
        "segmenter": {"name": "sam2", "params": {**sam, **PERMISSIVE, "device": "cpu"}},
        "regions": {"min_area": 0.01, "complement": True, "views": ["bbox", "whole"]},
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [
            {
                "name": "janus_pro",
                "label": "janus",
                "params": {"model": str(janus), "device": "cpu", "batch_size": 4},
            },
            {
                "name": "hf_vlm",
                "label": "qwen2_vl",
                "params": {"model": str(qwen), "device": "cpu", "batch_size": 4},
            },
        ],
        "decode": "argmax",
        "aggregate": {"name": "mix_grained", "params": {"lam": 1.0, "local": "area"}},
        "ensemble": {"name": "ensemble"},
        "runtime": {"store": str(root / "store.sqlite"), "chunk_images": 2, "workers": 1},
    }
    path = root / "tiny_llm_iqa.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _summary(stderr: str) -> tuple[int, ...]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    return tuple(int(match[name]) for name in ("scored", "total", "cached", "failed", "views", "calls"))


@pytest.fixture(scope="module")
def first_run(images: Path, llm_iqa_recipe: Path, root: Path) -> dict[str, Any]:
    out = root / "out" / "scores.csv"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "-r",
            str(llm_iqa_recipe),
            str(images),
            "-o",
            str(out),
            "--details",
            "--no-progress",
        ],
    )
    return {"result": result, "out": out}


def test_run_scores_every_image_and_reports_the_corrupt_one(first_run: dict[str, Any], images: Path) -> None:
    result = first_run["result"]
    assert result.exit_code == 1, (result.output, result.exception)
    rows = _read_csv(first_run["out"])
    assert list(rows[0]) == ["path", "score", *LABELS, "n_regions", "error"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == ["corrupt.jpg", "img0.png", "img1.png", "img2.png"]

    bad = by_name.pop("corrupt.jpg")
    assert bad["error"] and bad["score"] == "" and bad["n_regions"] == ""
    for name, row in by_name.items():
        assert row["error"] == "", (name, row["error"])
        assert int(row["n_regions"]) >= 1, name  # local regions (objects + complement)
        for column in ("score", *LABELS):
            assert 1.0 <= float(row[column]) <= 7.0, (name, column, row[column])
        mean = (float(row["janus"]) + float(row["qwen2_vl"])) / 2
        assert float(row["score"]) == pytest.approx(mean)  # the ensemble is the mean of models

    scored, total, cached, failed, views, calls = _summary(result.stderr)
    assert (scored, total, cached, failed) == (3, 4, 0, 1)
    assert views > 0 and calls > 0
    assert "failed: " in result.stderr and "corrupt.jpg" in result.stderr


def test_details_write_one_row_per_region(first_run: dict[str, Any]) -> None:
    images = {r["path"]: r for r in _read_csv(first_run["out"]) if not r["error"]}
    regions = _read_csv(first_run["out"].with_name("scores.regions.csv"))
    assert list(regions[0]) == ["path", "region", "kind", "x0", "y0", "x1", "y1", "area", *LABELS]
    for path, row in images.items():
        mine = [r for r in regions if r["path"] == path]
        assert len(mine) == int(row["n_regions"]) + 1  # n_regions counts local regions only
        kinds = [r["kind"] for r in mine]
        assert kinds.count("global") == 1 and set(kinds) <= {"global", "object", "complement"}
        for r in mine:
            assert 0.0 < float(r["area"]) <= 1.0
            assert all(float(r[label]) in {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0} for label in LABELS)  # argmax
    assert any(r["kind"] == "object" for r in regions), "SAM2 masks reached the scorers"
    assert not any(r["path"].endswith("corrupt.jpg") for r in regions)


def _console_script() -> Path | None:
    script = Path(sys.executable).parent / ("iqa.exe" if os.name == "nt" else "iqa")
    return script if script.exists() else None


def test_rerun_calls_no_model(first_run: dict[str, Any], images: Path, llm_iqa_recipe: Path, root: Path) -> None:
    """Same command again, as a user runs it (console script, new process): all from the store."""
    assert first_run["result"].exit_code == 1
    out = root / "out" / "again.csv"
    script = _console_script()
    args = [
        "run",
        "-r",
        str(llm_iqa_recipe),
        str(images),
        "-o",
        str(out),
        "--details",
        "--no-progress",
    ]
    if script is not None:
        proc = subprocess.run([str(script), *args], check=False, capture_output=True, text=True, timeout=120)
        exit_code, stderr = proc.returncode, proc.stderr
    else:  # pragma: no cover - editable installs always have the script
        result = CliRunner().invoke(cli, args)
        exit_code, stderr = result.exit_code, result.stderr
    assert exit_code == 1, stderr
    assert _summary(stderr) == (3, 4, 3, 1, 0, 0)
    assert "0 views scored in 0 scorer calls" in stderr
    assert "Traceback" not in stderr
    first, again = _read_csv(first_run["out"]), _read_csv(out)
    assert again == first
    assert _read_csv(out.with_name("again.regions.csv")) == _read_csv(first_run["out"].with_name("scores.regions.csv"))


def test_other_aggregation_reuses_stored_model_outputs(
    first_run: dict[str, Any], images: Path, llm_iqa_recipe: Path, root: Path
) -> None:
    """Table 3 rows 4 vs 7: a recipe differing only in aggregation runs no model at all."""
    assert first_run["result"].exit_code == 1
    recipe = yaml.safe_load(llm_iqa_recipe.read_text())
    recipe["regions"]["views"] = ["bbox"]
    recipe["aggregate"] = {"name": "mean"}
    recipe["decode"] = "expected"
    path = root / "tiny_mean.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(cli, ["run", "-r", str(path), str(images), "-o", str(root / "mean.csv")])
    assert result.exit_code == 1, result.output
    assert _summary(result.stderr) == (3, 4, 0, 1, 0, 0)
    for row in _read_csv(root / "mean.csv"):
        if not row["error"]:
            assert 1.0 <= float(row["score"]) <= 7.0


def test_clip_iqa_end_to_end(images: Path, root: Path) -> None:
    clip = build_tiny_clip(root / "models" / "clip")
    recipe = {
        "segmenter": {"name": "whole"},
        "regions": {"views": ["whole"]},
        "scorers": [{"name": "clip_iqa", "params": {**clip, "device": "cpu"}}],
        "decode": "expected",
        "aggregate": {"name": "mean"},
    }
    path = root / "tiny_clip_iqa.yaml"
    path.write_text(yaml.safe_dump(recipe))
    good = sorted(str(p) for p in images.glob("*.png"))
    out = root / "out" / "clip.jsonl"
    result = CliRunner().invoke(cli, ["run", "-r", str(path), *good, "-o", str(out), "--no-store", "--details"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert _summary(result.stderr)[:4] == (3, 3, 0, 0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == good
    for r in rows:
        assert r["error"] is None and r["n_regions"] == 0  # no local region: whole image only
        assert 0.0 <= r["score"] <= 1.0 and r["score"] == pytest.approx(r["clip_iqa"])  # P(good)
        assert [reg["kind"] for reg in r["regions"]] == ["global"]


def test_the_papers_recipe_runs_by_name_on_tiny_builds(images: Path, llm_iqa_recipe: Path, root: Path) -> None:
    """`iqa run --recipe llm_iqa` itself (SAM2 + mPLUG-Owl3 + Janus-Pro), its checkpoints pointed
    at tiny random builds with --set: the paper's recipe runs in the environment the project
    installs (mPLUG-Owl3 is the 240728 faithfulness fixture, loaded by path)."""
    models = root / "models"  # built by the llm_iqa_recipe fixture
    owl3 = Path(__file__).parent / "data" / "mplug_owl3_240728"
    out = root / "paper" / "scores.csv"
    sets = {
        "segmenter.params.config": models / "sam2" / "tiny_sam2.yaml",
        "segmenter.params.checkpoint": models / "sam2" / "tiny_sam2.pt",
        "scorers.0.params.model": owl3,
        "scorers.1.params.model": models / "janus",
        "runtime.store": root / "paper" / "store.sqlite",
    }
    args = ["run", "--recipe", "llm_iqa", str(images), "-o", str(out), "--no-progress"]
    args += [item for key, value in sets.items() for item in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output  # the corrupt file is an error row, the rest scored
    rows = {Path(row["path"]).name: row for row in _read_csv(out)}
    scored = [rows[f"img{i}.png"] for i in range(3)]
    assert all(row["error"] == "" for row in scored)
    for row in scored:
        owl, janus = float(row["mplug_owl3"]), float(row["janus_pro"])
        assert 1 <= owl <= 7 and 1 <= janus <= 7
        assert float(row["score"]) == pytest.approx((owl + janus) / 2)
    assert rows["corrupt.jpg"]["error"]
