"""The pipeline end to end with the test scorer and segmenter: batching, store, resume, errors."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import iqa_core
from helpers import BrightnessScorer, Recorder, brightness_probs, quadrant_image, recipe, write_images
from iqa_core.errors import IQAError
from iqa_core.hookspecs import hookimpl
from iqa_core.pipeline import Pipeline, load_recipe
from iqa_core.plugins import manager
from iqa_core.recipe import resolve
from iqa_core.store import Store

pytestmark = pytest.mark.usefixtures("test_plugins")


def expected_score(img: Image.Image, k: int = 7) -> float:
    return float(brightness_probs(img, k) @ np.arange(1, k + 1))


def result_rows(store_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store_path) as db:
        return db.execute("SELECT recipe, image FROM results").fetchall()


def test_end_to_end_scores_follow_the_pixels(tmp_path: Path, test_plugins: Recorder) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    pipe = iqa_core.load_recipe(recipe(tmp_path / "s.sqlite"))
    results = pipe.score_many([tmp_path / "imgs"])
    assert [r.path for r in results] == [str(p) for p in paths]
    for path, r in zip(paths, results):
        assert r.error is None and r.size == (64, 48) and r.content_hash
        img = Image.open(path).convert("RGB")
        # regions: global, top-left (0.25), bottom-right (0.25), complement (0.5); the dot is dropped
        assert [x.region.kind for x in r.regions] == ["global", "object", "object", "complement"]
        assert [x.region.bbox for x in r.regions] == [(0, 0, 64, 48), (0, 0, 32, 24), (32, 24, 64, 48), (0, 0, 64, 48)]
        assert [x.region.area for x in r.regions] == pytest.approx([1.0, 0.25, 0.25, 0.5])
        assert r.n_regions == 3
        s = [expected_score(img.crop(x.region.bbox)) for x in r.regions]
        for x, want in zip(r.regions, s):
            assert x.scores["test_brightness"] == pytest.approx(want)
        local = 0.25 * s[1] + 0.25 * s[2] + 0.5 * s[3]
        assert r.scorer_scores["test_brightness"] == pytest.approx((s[0] + local) / 2)
        assert r.score == pytest.approx(r.scorer_scores["test_brightness"])
    # the bright top-left quadrant scores higher than the darker rest
    assert all(r.regions[1].scores["test_brightness"] > r.regions[2].scores["test_brightness"] for r in results)
    assert test_plugins.loads == 1
    assert len(test_plugins.segmented) == 3 and test_plugins.segmented[0] == (48, 64)


def test_views_of_several_images_share_a_batch(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 4)
    pipe = load_recipe(recipe(None, scorers=[{"name": "test_brightness", "params": {"batch_size": 6}}]))
    pipe.score_many([tmp_path / "imgs"])
    batches = test_plugins.batches
    assert [len(b) for b in batches] == [6, 6, 4]
    assert any(len({source for source, _ in b}) >= 2 for b in batches)
    # 4 images x (whole + 2 objects + complement) = 16 views; the complement's bbox is the
    # whole frame but it is its own view key ("bbox:..."), scored once per image
    assert len(test_plugins.views) == 16
    assert len(set(test_plugins.views)) == 16


def test_rerun_with_the_same_store_computes_nothing(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    first = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    n_views, n_seg = len(test_plugins.views), len(test_plugins.segmented)
    assert n_views == 12 and n_seg == 3
    again = load_recipe(recipe(store))
    second = again.score_many([tmp_path / "imgs"])
    assert len(test_plugins.views) == n_views and len(test_plugins.segmented) == n_seg
    assert test_plugins.loads == 1  # a fully cached run does not even load the models
    assert again.stats["results_cached"] == 3 and again.stats["scorer_calls"] == 0
    assert [r.score for r in second] == [r.score for r in first]
    assert [[x.scores for x in r.regions] for r in second] == [[x.scores for x in r.regions] for r in first]
    assert [[x.region for x in r.regions] for r in second] == [[x.region for x in r.regions] for r in first]
    # batch size does not change results: still nothing computed
    bigger = recipe(store, scorers=[{"name": "test_brightness", "params": {"batch_size": 64}}])
    load_recipe(bigger).score_many([tmp_path / "imgs"])
    assert len(test_plugins.views) == n_views


def test_a_rerun_reads_and_hashes_each_file_but_decodes_none(
    tmp_path: Path, test_plugins: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import iqa_core.images as images

    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    first = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    decodes: list[str] = []
    original = images.decode_reduced

    def counted(data, where, *args, **kwargs):
        decodes.append(where)
        return original(data, where, *args, **kwargs)

    monkeypatch.setattr(images, "decode_reduced", counted)
    (tmp_path / "imgs" / "new.png").write_bytes((tmp_path / "imgs" / "img00.png").read_bytes()[:-1] + b"\0")
    second = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    assert [r.score for r in second[:3]] == [r.score for r in first]
    assert [Path(d).name for d in decodes] == ["new.png"]  # only the file whose result is not stored


def test_changing_only_the_aggregator_makes_no_scorer_calls(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    mix = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    n_views, n_seg, n_loads = len(test_plugins.views), len(test_plugins.segmented), test_plugins.loads
    mean = load_recipe(recipe(store, aggregate={"name": "mean"}))
    out = mean.score_many([tmp_path / "imgs"])
    assert len(test_plugins.views) == n_views and len(test_plugins.segmented) == n_seg
    assert test_plugins.loads == n_loads  # nothing to compute: no model is even loaded
    assert mean.stats["scorer_calls"] == 0 and mean.stats["views_cached"] == 12
    for a, b in zip(mix, out):
        local = [x.scores["test_brightness"] for x in b.regions if x.region.kind != "global"]
        assert b.score == pytest.approx(np.mean(local))
        assert b.score != pytest.approx(a.score)
    # one results row per (recipe, image): two recipes, three images
    assert len(result_rows(store)) == 6
    # a result-relevant scorer param does recompute
    sharper = recipe(store, scorers=[{"name": "test_brightness", "params": {"sharpness": 3.0}}])
    load_recipe(sharper).score_many([tmp_path / "imgs"])
    assert len(test_plugins.views) == 2 * n_views


def test_changing_the_standard_rescores(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    store = tmp_path / "s.sqlite"
    load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    out = load_recipe(recipe(store, standard={"name": "word", "params": {"levels": 5}})).score_many([tmp_path / "imgs"])
    assert len(test_plugins.views) == 16
    assert all(1.0 <= r.score <= 5.0 for r in out)


def test_resume_after_interruption(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 6)
    store = tmp_path / "s.sqlite"
    interrupted = recipe(
        store, scorers=[{"name": "test_brightness", "params": {"batch_size": 3, "interrupt_after": 5}}]
    )
    interrupted["runtime"]["chunk_images"] = 2  # 8 views per flush: 3 calls per flush
    with pytest.raises(KeyboardInterrupt):
        load_recipe(interrupted).score_many([tmp_path / "imgs"])
    done = list(test_plugins.views)
    assert len(done) == 14  # flush 1: 3 + 3 + 2 views; flush 2: 3 + 3, then the interrupt
    # img00 and img01 finished, and img02 too: sorted by size, flush 2's first two calls held
    # both quadrants of img02 and img03, then img02's two full-frame views
    assert len(result_rows(store)) == 3
    resumed = recipe(store, scorers=[{"name": "test_brightness", "params": {"batch_size": 3}}])
    resumed["runtime"]["chunk_images"] = 2
    pipe = load_recipe(resumed)
    results = pipe.score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results) and len(results) == 6
    again = test_plugins.views[len(done) :]
    assert len(again) == 24 - 14  # only what was missing
    assert not set(again) & set(done)
    assert pipe.stats["results_cached"] == 3 and pipe.stats["views_cached"] == 14 - 12
    rows = result_rows(store)
    assert len(rows) == 6 and len(set(rows)) == 6  # one row per image, none duplicated
    # and the resumed scores equal an uninterrupted run's
    fresh = load_recipe(recipe(None)).score_many([tmp_path / "imgs"])
    assert [r.score for r in results] == pytest.approx([r.score for r in fresh])


def test_corrupt_and_empty_images_become_error_rows(tmp_path: Path, test_plugins: Recorder) -> None:
    folder = tmp_path / "imgs"
    good = write_images(folder, 3)
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(b"not a jpeg at all" * 20)
    cut = folder / "cut.jpg"
    quadrant_image(99).save(tmp_path / "full.jpg")
    cut.write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    pipe = load_recipe(recipe(tmp_path / "s.sqlite"))
    results = {Path(r.path).name: r for r in pipe.score_many([folder, tmp_path / "missing.png"])}
    assert len(results) == 7
    for name in ("empty.png", "garbage.jpg", "cut.jpg", "missing.png"):
        r = results[name]
        assert r.error and r.score is None and r.path in r.error and r.regions == []
    assert "empty file" in results["empty.png"].error
    assert "not an image" in results["garbage.jpg"].error
    assert "not found" in results["missing.png"].error
    for p in good:
        assert results[p.name].error is None and results[p.name].score is not None
    assert pipe.stats["failed"] == 4 and pipe.stats["images"] == 7


def test_a_scorer_failing_on_one_view_fails_only_that_image(tmp_path: Path, test_plugins: Recorder) -> None:
    paths = write_images(tmp_path / "imgs", 4)
    store = tmp_path / "s.sqlite"
    bad = recipe(store, scorers=[{"name": "test_brightness", "params": {"fail_on": paths[1].name}}])
    results = load_recipe(bad).score_many([tmp_path / "imgs"])
    assert [r.error is None for r in results] == [True, False, True, True]
    assert results[1].error.startswith(f"{paths[1]}: scorer 'test_brightness' failed: RuntimeError: ")
    assert results[1].score is None
    # nothing of the failed image is stored as a result, so a fixed rerun scores it
    n = len(test_plugins.views)
    fixed = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in fixed)
    assert len(test_plugins.views) - n == 4  # only the failed image's views


def test_duplicate_content_in_one_chunk_with_a_failing_view(tmp_path: Path, test_plugins: Recorder) -> None:
    paths = write_images(tmp_path / "imgs", 2)
    copy = tmp_path / "imgs" / "copy_of_img01.png"
    copy.write_bytes(paths[1].read_bytes())
    ok = load_recipe(recipe(None)).score_many([tmp_path / "imgs"])
    by_name = {Path(r.path).name: r for r in ok}
    assert by_name["copy_of_img01.png"].score == by_name["img01.png"].score
    assert len(test_plugins.views) == 8  # identical content is scored once
    bad = recipe(None, scorers=[{"name": "test_brightness", "params": {"fail_on": "img01"}}])
    results = {Path(r.path).name: r for r in load_recipe(bad).score_many([tmp_path / "imgs"])}
    assert results["img00.png"].error is None
    assert results["img01.png"].error.startswith(str(paths[1]))
    assert results["copy_of_img01.png"].error.startswith(f"{copy}: scorer 'test_brightness' failed")


def test_segmenter_failure_fails_only_that_image(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    tiny = tmp_path / "imgs" / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)  # the test segmenter refuses it
    results = {Path(r.path).name: r for r in load_recipe(recipe(None)).score_many([tmp_path / "imgs"])}
    assert results["img00.png"].error is None and results["img01.png"].error is None
    assert (
        results["tiny.png"].error
        == f"{tiny}: segmentation failed: ValueError: image too small to segment: 4 pixels wide"
    )


def test_whole_segmenter_scores_only_the_whole_image(tmp_path: Path, test_plugins: Recorder) -> None:
    paths = write_images(tmp_path / "imgs", 2)
    pipe = load_recipe(recipe(None, segmenter={"name": "whole"}))
    results = pipe.score_many([tmp_path / "imgs"])
    assert test_plugins.segmented == []
    for p, r in zip(paths, results):
        assert [x.region.kind for x in r.regions] == ["global"] and r.n_regions == 0
        assert r.score == pytest.approx(expected_score(Image.open(p).convert("RGB")))


def test_whole_segmenter_says_what_n_regions_counts() -> None:
    # `iqa plugins whole` and the n_regions column agree: the global view is not a local region
    from iqa_core.commands import describe_component

    text = " ".join(describe_component("segmenters", "whole"))
    assert "n_regions 0" in text and "only region" not in text


def test_no_local_region_and_no_whole_view_falls_back_to_the_whole_image(
    tmp_path: Path, test_plugins: Recorder
) -> None:
    paths = write_images(tmp_path / "imgs", 1)
    # `whole` yields no local regions; views without 'whole' leave nothing to score
    pipe = load_recipe(
        recipe(None, segmenter={"name": "whole"}, aggregate={"name": "area"}, regions={"views": ["bbox"]})
    )
    [r] = pipe.score_many([tmp_path / "imgs"])
    assert r.error is None
    assert r.score == pytest.approx(expected_score(Image.open(paths[0]).convert("RGB")))
    # a segmenter whose masks all fall under t, with no complement
    pipe = load_recipe(
        recipe(None, aggregate={"name": "mean"}, regions={"views": ["bbox"], "min_area": 0.9, "complement": False})
    )
    [r] = pipe.score_many([tmp_path / "imgs"])
    assert r.error is None and r.score is not None


def test_views_without_whole_score_local_regions_only(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 1)
    pipe = load_recipe(recipe(None, aggregate={"name": "area"}, regions={"views": ["bbox"]}))
    [r] = pipe.score_many([tmp_path / "imgs"])
    assert [x.region.kind for x in r.regions] == ["object", "object", "complement"]
    assert len(test_plugins.views) == 3


def test_mask_views(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 1)
    store = tmp_path / "s.sqlite"
    bbox = load_recipe(recipe(store)).score_many([tmp_path / "imgs"])[0]
    mask = load_recipe(recipe(store, regions={"views": ["mask", "whole"]})).score_many([tmp_path / "imgs"])[0]
    keys = [k for _, k in test_plugins.views]
    assert sum(k.startswith("mask:") for k in keys) == 3 and sum(k == "whole" for k in keys) == 1
    # the complement's mask view zeroes the bright quadrant: darker than its bbox view
    assert mask.regions[3].scores["test_brightness"] < bbox.regions[3].scores["test_brightness"]


def test_min_view_side_is_part_of_a_views_identity(tmp_path: Path, test_plugins: Recorder) -> None:
    """Crops thinner than min_view_side are upscaled: different pixels, so not a stored hit."""
    write_images(tmp_path / "imgs", 1)
    store = tmp_path / "s.sqlite"
    load_recipe(recipe(store)).score_many([tmp_path / "imgs"])
    n = len(test_plugins.views)
    bigger = recipe(store, regions={"views": ["bbox", "whole"], "min_view_side": 40})
    load_recipe(bigger).score_many([tmp_path / "imgs"])
    seen = test_plugins.views[n:]
    assert len(seen) == 2  # the two 32x24 quadrant crops, now upscaled; whole and complement reused


def test_hook_receives_every_result(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"")
    seen: list = []

    class Sink:
        @hookimpl
        def iqa_image_scored(self, result, recipe):
            seen.append((result, recipe))

    sink = Sink()
    manager().register(sink)
    try:
        results = load_recipe(recipe(tmp_path / "s.sqlite")).score_many([tmp_path / "imgs"])
        load_recipe(recipe(tmp_path / "s.sqlite")).score_many([tmp_path / "imgs"])  # cached results too
    finally:
        manager().unregister(sink)
    assert len(seen) == 6
    assert [r for r, _ in seen[:3]] == results
    assert seen[0][1]["scorers"][0]["name"] == "test_brightness" and seen[0][1]["decode"] == "expected"
    assert sum(r.error is not None for r, _ in seen) == 2


def test_score_a_pil_image_and_a_path(tmp_path: Path, test_plugins: Recorder) -> None:
    img = quadrant_image(40)
    pipe = load_recipe(recipe(None))
    r = pipe.score(img)
    assert r.error is None and r.size == (64, 48) and r.path == "<image>"
    s = [expected_score(img.crop(x.region.bbox)) for x in r.regions]
    assert r.score == pytest.approx((s[0] + 0.25 * s[1] + 0.25 * s[2] + 0.5 * s[3]) / 2)
    # an RGBA PIL image is composited like a file would be
    assert pipe.score(img.convert("RGBA")).score == pytest.approx(r.score)
    path = tmp_path / "x.png"
    img.save(path)
    by_path = pipe.score(path)
    assert by_path.path == str(path) and by_path.score == pytest.approx(r.score)
    assert pipe.score(str(path)).score == pytest.approx(r.score)


def test_two_scorers_and_ensemble_over_different_k(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    two = recipe(
        None,
        scorers=[
            {"name": "test_brightness", "label": "five", "standard": {"name": "word", "params": {"levels": 5}}},
            {"name": "test_brightness", "label": "seven"},
        ],
    )
    results = load_recipe(two).score_many([tmp_path / "imgs"])
    for r in results:
        five, seven = r.scorer_scores["five"], r.scorer_scores["seven"]
        assert 1 <= five <= 5 and 1 <= seven <= 7
        assert r.score == pytest.approx(1 + ((five - 1) / 4 + (seven - 1) / 6) / 2 * 4)
        assert set(r.regions[0].scores) == {"five", "seven"}


def test_argmax_decoding_gives_levels(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    results = load_recipe(recipe(None, decode="argmax")).score_many([tmp_path / "imgs"])
    for r in results:
        assert all(float(x.scores["test_brightness"]).is_integer() for x in r.regions)


def test_store_is_created_from_the_recipe(
    tmp_path: Path, test_plugins: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "imgs", 1)
    monkeypatch.chdir(tmp_path)
    data = recipe(None)
    del data["runtime"]["store"]
    load_recipe(data).score_many(["imgs"])
    assert (tmp_path / ".iqa" / "store.sqlite").is_file()
    with Store(tmp_path / ".iqa" / "store.sqlite") as store:
        assert store.count("results") == 1 and store.count("masks") == 1 and store.count("view_scores") == 4


def test_explicit_store_object_and_pipeline(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 1)
    store = Store(None)
    pipe = Pipeline(resolve(recipe(tmp_path / "unused.sqlite")), store)
    pipe.score_many([tmp_path / "imgs"])
    assert store.count("results") == 1 and not (tmp_path / "unused.sqlite").exists()


def test_nothing_to_score_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IQAError, match="no images found"):
        load_recipe(recipe(None)).score_many([tmp_path / "empty"])


def test_one_worker_per_device_shares_the_store(tmp_path: Path, test_plugins: Recorder) -> None:
    """runtime.devices with two entries: two spawned workers, one store file, input order kept."""
    from iqa_core.executors import run_pipeline

    paths = write_images(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"")
    data = recipe(
        tmp_path / "s.sqlite",
        segmenter={"name": "helpers:QuadrantSegmenter"},
        scorers=[{"name": "helpers:BrightnessScorer", "label": "b"}],
    )
    data["runtime"].update(devices=["cpu", "cpu"], allow_imports=True)  # the workers import helpers
    pipe = load_recipe(data)
    results = run_pipeline(pipe, [tmp_path / "imgs"])
    assert [Path(r.path).name for r in results] == ["bad.png"] + [p.name for p in paths]
    assert results[0].error and all(r.error is None for r in results[1:])
    assert pipe.stats["views_scored"] == 20
    single = load_recipe({**data, "runtime": {**data["runtime"], "devices": None}})
    again = run_pipeline(single, [tmp_path / "imgs"])
    assert single.stats["results_cached"] == 5 and single.stats["scorer_calls"] == 0
    assert [r.score for r in again] == [r.score for r in results]
    assert len(result_rows(tmp_path / "s.sqlite")) == 5


def test_device_workers_report_user_errors_and_missing_inputs(tmp_path: Path, test_plugins: Recorder) -> None:
    from iqa_core.errors import ModelUnavailable
    from iqa_core.executors import run_pipeline

    (image,) = write_images(tmp_path / "imgs", 1)
    data = recipe(
        tmp_path / "s.sqlite",
        segmenter={"name": "helpers:QuadrantSegmenter"},
        scorers=[{"name": "helpers:BrightnessScorer"}],
    )
    data["runtime"].update(devices=["cpu", "cpu"], allow_imports=True)  # the workers import helpers
    # the second worker's whole share is a missing file: an error row, not a failed run
    results = run_pipeline(load_recipe(data), [image, tmp_path / "missing.png"])
    assert results[0].error is None and "file not found" in results[1].error
    data["scorers"] = [{"name": "hf_vlm", "params": {"model": str(tmp_path / "no-such-model")}}]
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        run_pipeline(load_recipe(data), [tmp_path / "imgs"])


def test_one_device_counts_its_work(tmp_path: Path, test_plugins: Recorder) -> None:
    from iqa_core.executors import run_pipeline

    write_images(tmp_path / "imgs", 2)
    data = recipe(None)
    data["runtime"]["devices"] = ["cpu"]
    pipe = load_recipe(data)
    run_pipeline(pipe, [tmp_path / "imgs"])
    assert pipe.stats["views_scored"] == 8 and pipe.stats["scorer_calls"] > 0


class _Unnormalised(BrightnessScorer):
    def score(self, views, standard):
        levels = super().score(views, standard)
        return type(levels)(levels.probs * 2.0, levels.values)


def test_malformed_level_probabilities_become_error_rows(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    data = recipe(None, scorers=[{"name": f"{__name__}:_Unnormalised"}])
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert all(r.error and "do not sum to 1" in r.error for r in results)


class _TwoPhase(BrightnessScorer):
    """Splits its work as the model scorers do; records which thread ran each phase."""

    threads: list[tuple[str, str]] = []

    def prepare(self, views, standard):
        import threading

        if any("img01" in v.source for v in views):
            raise RuntimeError("cannot decode img01")
        self.threads.append(("prepare", threading.current_thread().name))
        return list(views)

    def forward(self, prepared, standard):
        import threading

        self.threads.append(("forward", threading.current_thread().name))
        return self.score(prepared, standard)


def test_prepare_runs_ahead_in_a_thread_and_its_failures_stay_per_image(tmp_path: Path, test_plugins: Recorder) -> None:
    import threading

    write_images(tmp_path / "imgs", 4)
    _TwoPhase.threads.clear()
    data = recipe(None, scorers=[{"name": f"{__name__}:_TwoPhase", "params": {"batch_size": 2}}])
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert [Path(r.path).name for r in results if r.error] == ["img01.png"]
    assert "cannot decode img01" in results[1].error
    # forwards run in the scoring thread, batches are prepared in another, images finish in the caller's
    main = threading.main_thread().name
    assert {t for phase, t in _TwoPhase.threads if phase == "forward"} == {"iqa-score"}
    assert {t for phase, t in _TwoPhase.threads if phase == "prepare"} - {"iqa-score", main}


def test_a_view_that_cannot_be_cut_fails_only_its_image(
    tmp_path: Path, test_plugins: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import iqa_core.pipeline.views as views

    write_images(tmp_path / "imgs", 3)
    original = views.crop_view

    def crop(image, region, mode, min_side=0):
        if region.kind == "object" and image.getpixel((image.width - 1, image.height - 1))[0] == 43:
            raise MemoryError("no room for this crop")  # img01's base grey is 43
        return original(image, region, mode, min_side)

    monkeypatch.setattr(views, "crop_view", crop)
    results = load_recipe(recipe(None)).score_many([tmp_path / "imgs"])
    assert [bool(r.error) for r in results] == [False, True, False]
    assert "cutting a view failed: MemoryError: no room for this crop" in results[1].error


def test_run_pipeline_uses_the_recipes_executor(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 2)
    data = recipe(tmp_path / "s.sqlite")
    data["runtime"]["devices"] = ["cpu"]
    pipe = load_recipe(data)
    assert [r.error for r in iqa_core.run_pipeline(pipe, [tmp_path / "imgs"])] == [None, None]
    with pytest.raises(IQAError, match="no images found"):
        iqa_core.run_pipeline(pipe, [tmp_path / "nothing-here"])


class _DiesOnImg01(BrightnessScorer):
    """A worker process that dies (as under the OOM killer) when it meets img01."""

    def score(self, views, standard):
        if any("img01" in v.source for v in views):
            os._exit(3)
        return super().score(views, standard)


def test_a_device_worker_that_dies_is_reported_not_waited_for(tmp_path: Path, test_plugins: Recorder) -> None:
    from iqa_core.executors import WorkerFailed, run_pipeline

    write_images(tmp_path / "imgs", 4)
    data = recipe(
        tmp_path / "s.sqlite",
        segmenter={"name": "helpers:QuadrantSegmenter"},
        scorers=[{"name": f"{__name__}:_DiesOnImg01"}],
    )
    data["runtime"].update(devices=["cpu", "cpu"], allow_imports=True)  # the workers import helpers
    with pytest.raises(WorkerFailed, match=r"worker for device cpu exited \(code 3\).*a rerun resumes") as info:
        run_pipeline(load_recipe(data), [tmp_path / "imgs"])
    assert info.value.exit_code == 3 and "__main__" not in str(info.value)  # exit 1 means "images failed"


class _OnePrepareAtATime(BrightnessScorer):
    """Records how many prepares overlap; its forward fails on batches holding img00, so the
    engine retries view by view (preparing in the main thread) while batch i + 1 is prepared."""

    lock = threading.Lock()
    active = 0
    peak = 0

    def prepare(self, views, standard):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.02)
        with cls.lock:
            cls.active -= 1
        return list(views)

    def forward(self, prepared, standard):
        if len(prepared) > 1 and any("img00" in v.source for v in prepared):
            raise RuntimeError("this batch does not fit")
        return self.score(prepared, standard)


def test_retries_never_prepare_alongside_the_background_thread(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 4)
    _OnePrepareAtATime.peak = 0
    data = recipe(None, scorers=[{"name": f"{__name__}:_OnePrepareAtATime", "params": {"batch_size": 2}}])
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    assert _OnePrepareAtATime.peak == 1
