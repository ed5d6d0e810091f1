"""`executor: ray` on a local Ray instance gives the local run's results and store rows."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

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
    # the keeper's look-ups kept SQLite from resetting its log: the run empties it at the end
    assert (tmp_path / "ray.sqlite-wal").stat().st_size == 0

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


def _steps(recipe: dict, paths: list[Path]) -> tuple[Any, dict]:
    """The Ray steps called directly, in one process, on one group: the group scored, and the steps."""
    from iqa_core.executors.ray.keeper import StoreKeeper
    from iqa_core.executors.ray.score import ScoreStep
    from iqa_core.executors.ray.segment import SegmentStep
    from iqa_core.executors.ray.views import cut_views
    from iqa_core.executors.ray.wire import Group

    recipe = {**recipe, "runtime": {**recipe["runtime"], "store": None, "chunk_images": len(paths)}}  # one chunk
    keeper = ray.remote(StoreKeeper).remote(None)
    segment, score = SegmentStep(Pipeline, recipe, keeper), ScoreStep(Pipeline, recipe)
    viewed = cut_views(
        segment({"images": [json.dumps([{"path": str(p)} for p in paths])]}), Pipeline, json.dumps(recipe)
    )
    scored = Group.read(score(viewed), 0)
    assert not scored.fatal
    return scored, {"segment": segment, "score": score, "viewed": Group.read(viewed, 0)}


def test_ray_segmentation_failures_are_rows_and_steps_keep_one_batch(local_ray, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "tiny.png").write_bytes(b"")  # unreadable
    local = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "local.sqlite", "local")), [tmp_path / "imgs"])
    on_ray = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "ray.sqlite", "ray")), [tmp_path / "imgs"])
    assert [r.error for r in on_ray] == [r.error for r in local]

    # called directly, the steps keep only the current group's rows
    recipe = _recipe(tmp_path / "unused.sqlite", "local")
    for path in sorted((tmp_path / "imgs").glob("img*.png")):
        group, steps = _steps(recipe, [path])
        assert len(steps["viewed"].views) == 4 and not group.pixels and not group.views
        assert [r["error"] for r in group.results] == [None]
        # the rows it sends back: one mask row, four view scores, one result
        assert [len(group.rows[t]) for t in ("masks", "view_scores", "results")] == [1, 4, 1]
        assert steps["score"].pipeline.store.count("view_scores") == 4
        assert steps["segment"].pipeline.store.count("masks") == 1
    narrow = tmp_path / "narrow.png"
    Image.new("RGB", (4, 16)).save(narrow)  # the test segmenter fails on it
    group, steps = _steps(recipe, [narrow])
    assert "segmentation failed: ValueError: image too small" in group.results[0]["error"]
    assert steps["viewed"].views == [] and steps["viewed"].stats.get("segmenter_calls", 0) == 0  # not tried again


def test_ray_steps_are_separate_and_a_scoring_batch_spans_images(local_ray, tmp_path: Path) -> None:
    from iqa_core.executors.ray import dataset

    paths = write_images(tmp_path / "imgs", 3)
    recipe = _recipe(tmp_path / "unused.sqlite", "local")
    steps = [
        line.strip("+- ")
        for line in repr(dataset(ray, Pipeline.from_recipe(recipe), ray.data.from_items([]), None)).splitlines()
    ]
    assert steps[:3] == ["MapBatches(ScoreStep)", "MapBatches(cut_views)", "MapBatches(SegmentStep)"]

    group, called = _steps(recipe, paths)
    # the views step cut every view (4 per image) of the group; the scoring step batched them
    # across images by the scorer's batch_size (3): 12 views in 4 forwards, not 3 x 2
    viewed = called["viewed"].views
    assert len(viewed) == 12 and len({v["path"] for v in viewed}) == 3
    assert len(group.rows["view_scores"]) == 12 and len(group.results) == 3
    assert called["viewed"].stats.get("scorer_calls", 0) == 0  # no model in the views step
    assert group.stats["scorer_calls"] == 4 and group.stats["views_scored"] == 12


def test_ray_a_failed_view_fails_its_image_only(local_ray, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 6)
    recipes = {}
    for executor in ("local", "ray"):
        recipes[executor] = _recipe(tmp_path / f"{executor}.sqlite", executor)
        recipes[executor]["scorers"][0]["params"]["fail_on"] = "img02"
    local = run_pipeline(Pipeline.from_recipe(recipes["local"]), [tmp_path / "imgs"])
    remote = run_pipeline(Pipeline.from_recipe(recipes["ray"]), [tmp_path / "imgs"])
    assert [r.error for r in remote] == [r.error for r in local]
    assert [bool(r.error) for r in remote] == [False, False, True, False, False, False]
    assert "cannot score a view of img02" in remote[2].error
    assert [r.score for r in remote] == [r.score for r in local]
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")


def _local_groups(pipeline: Pipeline, paths: list[str]) -> list[list[int]]:
    """The local run's batching groups (input indices between two flushes)."""
    import threading

    from iqa_core.pipeline import segment
    from iqa_core.pipeline.budget import ByteBudget
    from iqa_core.pipeline.items import Flush
    from iqa_core.pipeline.read import ReadAhead

    runtime = pipeline.recipe.runtime
    budget = ByteBudget(int(runtime.max_inflight_mb * 2**20))
    reader = ReadAhead(
        paths, budget, threading.Event(), runtime.max_pixels, 1, 2 * runtime.chunk_images, lambda p, h: None
    )
    groups: list[list[int]] = [[]]
    try:
        for item in segment.items(pipeline, reader):
            if isinstance(item, Flush):
                groups.append([])
            else:
                groups[-1].append(item.index)
                budget.release(item.nbytes)
    finally:
        reader.close()
    return groups


def test_ray_groups_are_the_local_runs_batching_groups(local_ray, tmp_path: Path) -> None:
    """Chunks of chunk_images paths, each split by half the byte budget, on the worker: the local groups."""
    from iqa_core.executors.ray import blocks
    from iqa_core.executors.ray.keeper import StoreKeeper
    from iqa_core.executors.ray.segment import SegmentStep
    from iqa_core.executors.ray.wire import Group

    paths = [str(p) for p in write_images(tmp_path / "imgs", 8)]  # 64 x 48: 12288 budget bytes each
    recipe = _recipe(tmp_path / "s.sqlite", "ray")
    recipe["runtime"].update(chunk_images=4, max_inflight_mb=2 * 3 * 12288 / 2**20)  # half the budget: 3 images
    pipeline = Pipeline.from_recipe(recipe)
    # a group never spans two chunks: [0..3] splits at 3 images, [4..7] starts afresh
    assert _local_groups(pipeline, paths) == [[0, 1, 2], [3], [4, 5, 6], [7]]
    inputs = [(p, {"i": i}) for i, p in enumerate(paths)]
    ((table, columns),) = blocks(inputs, 4)  # one block of two chunks, and the columns they carry
    chunks = [[i["path"] for i in json.loads(c)] for c in table.column("images").to_pylist()]
    assert chunks == [paths[:4], paths[4:]] and columns == [{"i": i} for i in range(8)]
    step = SegmentStep(
        Pipeline, {**recipe, "runtime": {**recipe["runtime"], "store": None}}, ray.remote(StoreKeeper).remote(None)
    )
    on_worker = []
    for chunk in table.column("images").to_pylist():
        out = step({"images": [chunk]})
        on_worker += [[paths.index(i["path"]) for i in Group.read(out, n).images] for n in range(len(out["images"]))]
    assert on_worker == _local_groups(pipeline, paths)


def test_ray_refuses_prescale_in_one_line(tmp_path: Path) -> None:
    from iqa_core.errors import IQAError

    data = _recipe(tmp_path / "s.sqlite", "ray")
    data["regions"]["prescale"] = True
    with pytest.raises(IQAError, match="regions.prescale is not supported with executor: ray"):
        run_pipeline(Pipeline.from_recipe(data), write_images(tmp_path / "imgs", 1))


def _driver_cannot_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way this process could read an image's bytes or header raises (Ray's workers are
    other processes, untouched); the list records each attempt."""
    import sys

    import PIL.Image

    tried: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            tried.append(f"{name}({args[0] if args else ''})")
            raise AssertionError(f"the driver called {name}")

        return call

    names = ("read_file", "read_image", "decoded_bytes", "content_hash", "read_uri")
    for module in [m for n, m in sys.modules.items() if n.startswith("iqa_core") and m is not None]:
        for name in names:
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, refuse(name))
    monkeypatch.setattr(PIL.Image, "open", refuse("PIL.Image.open"))
    return tried


def test_ray_driver_reads_no_image_bytes_and_a_uri_manifest_keeps_its_columns(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    import yaml
    from click.testing import CliRunner

    from iqa_core.cli import cli

    images = write_images(tmp_path / "imgs", 5)
    manifest = tmp_path / "m.csv"
    uris = [p.resolve().as_uri() for p in images] + [(tmp_path / "gone.png").as_uri()]
    manifest.write_text("uri,id,mos\n" + "".join(f"{u},id{i},{i / 2}\n" for i, u in enumerate(uris)))
    local = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "local.sqlite", "local")), uris)

    recipe_file = tmp_path / "ray.yaml"
    recipe_file.write_text(yaml.safe_dump(_recipe(tmp_path / "ray.sqlite", "ray")))
    tried = _driver_cannot_read(monkeypatch)
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli, ["run", "-r", str(recipe_file), str(manifest), "-o", str(out)])
    assert tried == [], tried
    assert res.exit_code == 1, res.output  # one input is missing: scored rows plus its error row
    rows = list(csv.DictReader(out.open()))
    assert [(r["path"], r["id"], r["mos"]) for r in rows] == [(u, f"id{i}", str(i / 2)) for i, u in enumerate(uris)]
    assert [r["score"] for r in rows[:5]] == [str(r.score) for r in local[:5]]
    assert "gone.png: not found" in rows[5]["error"] and rows[5]["score"] == ""
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")


class _Row(dict):
    """A manifest row the test can hold a weak reference to."""


def test_ray_driver_holds_no_manifest_row_while_its_inputs_are_scored(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names and columns go to Ray's object store a block at a time; each result comes
    back with its own row's columns, across blocks, and the driver's heap keeps none of them."""
    import gc
    import weakref

    import iqa_core.executors.dispatch as dispatch
    import iqa_core.executors.ray as on_ray
    from iqa_core.executors import iter_rows

    images = write_images(tmp_path / "imgs", 5)
    rows = [_Row(id=f"row{i}") for i in range(14)]
    alive = [weakref.ref(row) for row in rows]
    inputs = iter([(str(images[i % 5]), row) for i, row in enumerate(rows)])
    del rows
    monkeypatch.setattr(dispatch, "iter_inputs", lambda *a, **k: inputs)
    monkeypatch.setattr(on_ray, "BLOCK_CHUNKS", 2)  # chunk_images 2: 4 blocks of up to 4 inputs
    out = iter_rows(Pipeline.from_recipe(_recipe(tmp_path / "s.sqlite", "ray")), ["unused"])
    first = next(out)
    gc.collect()
    assert [ref() for ref in alive] == [None] * 14  # every row was sent on, none is kept here
    got = [first, *out]
    assert [(r.path, row) for r, row in got] == [(str(images[i % 5]), {"id": f"row{i}"}) for i in range(14)]
    assert all(r.error is None for r, _ in got)
