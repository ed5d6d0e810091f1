"""`executor: ray` on a local Ray instance gives the local run's results and store rows."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from helpers import write_images
from iqa_core.executors import run_pipeline
from iqa_core.pipeline import Pipeline

ray = pytest.importorskip("ray")
TESTS = str(Path(__file__).parent)


def _recipe(store: Path, executor: str) -> dict:
    # by module:Class, so Ray's worker processes can import the test components
    return {
        "segmenter": {"name": "helpers:QuadrantSegmenter"},
        "regions": {"min_area": 0.01, "views": ["bbox", "whole"], "min_view_side": 0},
        "scorers": [{"name": "helpers:BrightnessScorer", "params": {"batch_size": 3}}],
        "decode": "expected",
        "runtime": {"store": str(store), "chunk_images": 2, "executor": executor, "allow_imports": True},
    }


def _rows(store: Path) -> dict[str, set]:
    with sqlite3.connect(store) as db:
        return {
            "masks": set(db.execute("SELECT image, masks FROM masks")),
            "view_scores": set(db.execute("SELECT image, view, probs FROM view_scores")),
            "results": set(db.execute("SELECT image, score, regions FROM results")),
        }


@pytest.fixture(scope="module")
def local_ray():
    path = os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_ray_equals_local(local_ray, tmp_path: Path) -> None:
    images = write_images(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    inputs = [tmp_path / "imgs"]
    local = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "local.sqlite", "local")), inputs)
    on_ray = Pipeline.from_recipe(_recipe(tmp_path / "ray.sqlite", "ray"))
    remote = run_pipeline(on_ray, inputs)

    assert [r.path for r in remote] == [r.path for r in local]
    assert [r.score for r in remote] == [r.score for r in local]
    assert [bool(r.error) for r in remote] == [bool(r.error) for r in local] == [True] + [False] * len(images)
    assert [[x.scores for x in r.regions] for r in remote] == [[x.scores for x in r.regions] for r in local]
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")
    assert on_ray.stats["views_scored"] == 5 * 4  # whole + 2 objects + complement per image

    again = Pipeline.from_recipe(_recipe(tmp_path / "ray.sqlite", "ray"))
    rerun = run_pipeline(again, inputs)
    assert [r.score for r in rerun] == [r.score for r in local]
    assert again.stats["views_scored"] == 0  # every result came from the driver's store


def test_ray_reuses_what_the_store_has_and_counts_it(local_ray, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    run_pipeline(Pipeline.from_recipe(_recipe(store, "local")), [tmp_path / "imgs"])
    other = _recipe(store, "ray")
    other["decode"] = "argmax"  # a new recipe over the same stored masks and view scores
    pipeline = Pipeline.from_recipe(other)
    results = run_pipeline(pipeline, [tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    assert pipeline.stats["views_scored"] == 0 and pipeline.stats["views_cached"] == 3 * 4
    again = Pipeline.from_recipe(other)
    run_pipeline(again, [tmp_path / "imgs"])
    assert again.stats["results_cached"] == 3


def test_ray_user_error_is_raised_as_itself(local_ray, tmp_path: Path) -> None:
    from iqa_core.errors import ModelUnavailable

    write_images(tmp_path / "imgs", 1)
    data = _recipe(tmp_path / "s.sqlite", "ray")
    data["scorers"] = [{"name": "hf_vlm", "params": {"model": str(tmp_path / "no-such-model")}}]
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        run_pipeline(Pipeline.from_recipe(data), [tmp_path / "imgs"])


def test_ray_segmentation_failures_are_rows_and_actors_keep_one_batch(local_ray, tmp_path: Path) -> None:
    from iqa_core.executors.ray import ScoreStage, SegmentStage

    write_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "tiny.png").write_bytes(b"")  # unreadable
    local = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "local.sqlite", "local")), [tmp_path / "imgs"])
    on_ray = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "ray.sqlite", "ray")), [tmp_path / "imgs"])
    assert [r.error for r in on_ray] == [r.error for r in local]

    # called directly, the stages keep only the current batch's rows
    recipe = _recipe(tmp_path / "unused.sqlite", "local")
    recipe["runtime"]["store"] = None
    segment, score = SegmentStage(Pipeline, recipe), ScoreStage(Pipeline, recipe)
    for path in sorted((tmp_path / "imgs").glob("img*.png")):
        out = score(segment({"path": [str(path)], "seed": [""]}))
        assert out["fatal"] == [""] and json.loads(out["result"][0])["error"] is None
        assert score.pipeline.store.count("results") == 1
    narrow = tmp_path / "narrow.png"
    Image.new("RGB", (4, 16)).save(narrow)  # the test segmenter fails on it
    out = score(segment({"path": [str(narrow)], "seed": [""]}))
    assert "segmentation failed: ValueError: image too small" in json.loads(out["result"][0])["error"]
    assert json.loads(out["payload"][0])["stats"].get("segmenter_calls", 0) == 0  # not run again
