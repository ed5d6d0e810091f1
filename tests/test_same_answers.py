"""The streaming pipeline gives the old engine's answers on tiny real models (CPU).

The reference, ``data/old_engine_scores.json``, was computed once with the chunk-at-a-time
engine (``main`` at 4e40dc8, whose engine.py is still the one before the stages) from the
same seeded models, images and recipe, by ``summary(load_recipe(tiny_recipe(models)).score_many(write_inputs(folder)))``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sam2")

from iqa_core.pipeline import load_recipe
from iqa_plugins.testing import tiny_vlm
from iqa_plugins.testing.tiny_sam2 import PERMISSIVE, TINY_SIZE, build_tiny_sam2


def write_inputs(folder: Path) -> list[Path]:
    """Five images of different sizes with edges and shapes, and one corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(72, 96), (80, 80), (64, 112), (96, 64), (70, 90)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 50 * i)], -1).astype(np.uint8)
        img[h // 4 : h // 2, w // 5 : w // 2] = (230, 40, 40)
        img[h // 2 :, w // 2 : w - 4] = (20, 20, 200)
        img = np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"img{i}.png")
        Image.fromarray(img).save(paths[-1])
    paths.insert(2, folder / "broken.png")
    paths[2].write_bytes(b"not a png")
    return paths


def tiny_recipe(models: Path) -> dict[str, Any]:
    """The LLM-IQA shape on tiny seeded models; ``expected`` decoding shows any numeric drift."""
    sam = build_tiny_sam2(models / "sam2", image_size=TINY_SIZE)
    janus = tiny_vlm.build_janus(models / "janus")
    qwen = tiny_vlm.build_qwen2_vl(models / "qwen2_vl")
    return {
        "segmenter": {"name": "sam2", "params": {**sam, **PERMISSIVE, "device": "cpu"}},
        "regions": {"min_area": 0.01, "complement": True, "views": ["bbox", "whole"]},
        "scorers": [
            {"name": "janus_pro", "label": "janus", "params": {"model": str(janus), "device": "cpu", "batch_size": 3}},
            {"name": "hf_vlm", "label": "qwen", "params": {"model": str(qwen), "device": "cpu", "batch_size": 5}},
        ],
        "decode": "expected",
        "runtime": {"store": None, "chunk_images": 2, "workers": 2},
    }


def summary(results: list[Any]) -> list[Any]:
    """What must not change: errors, scores, per-scorer scores, regions and their scores."""
    out = []
    for r in results:
        regions = [[x.region.kind, list(x.region.bbox), x.region.area, x.scores] for x in r.regions]
        out.append([Path(r.path).name, r.error is not None, r.score, r.scorer_scores, regions])
    return out


REFERENCE: list[Any] = json.loads((Path(__file__).parent / "data" / "old_engine_scores.json").read_text())


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    root = tmp_path_factory.mktemp("same")
    paths = write_inputs(root / "imgs")
    return summary(load_recipe(tiny_recipe(root / "models")).score_many(paths))


def test_scores_equal_the_old_engines(scored: list[Any]) -> None:
    assert [row[:2] for row in scored] == [row[:2] for row in REFERENCE]
    for got, want in zip(scored, REFERENCE):
        if want[1]:
            continue
        assert got[2] == pytest.approx(want[2], rel=1e-5, abs=1e-6)
        assert got[3] == pytest.approx(want[3], rel=1e-5, abs=1e-6)
        assert [g[:2] for g in got[4]] == [w[:2] for w in want[4]]
        for g, w in zip(got[4], want[4]):
            assert g[2] == pytest.approx(w[2]) and g[3] == pytest.approx(w[3], rel=1e-5, abs=1e-6)
