"""The stages run at once, and decoded pixels in flight are bounded by bytes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import BrightnessScorer, QuadrantSegmenter, Recorder, recipe, write_images
from iqa_core.errors import ModelUnavailable
from iqa_core.executors.placement import thread_share
from iqa_core.pipeline import load_recipe
from iqa_core.pipeline.budget import ByteBudget

pytestmark = pytest.mark.usefixtures("test_plugins")
IMAGE_BYTES = 64 * 48 * 4  # one test image, decoded (PIL keeps RGB in 4 bytes a pixel)


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("iqa-")]


def test_budget_waits_for_room_and_lets_a_large_request_in_alone() -> None:
    budget, stop = ByteBudget(100), threading.Event()
    assert budget.try_acquire(60) and not budget.try_acquire(50)
    got = []
    waiter = threading.Thread(target=lambda: got.append(budget.acquire(50, stop)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # 60 + 50 > 100: it waits
    budget.release(60)
    waiter.join(5)
    assert got == [True] and budget.used == 50
    budget.release(50)
    assert budget.try_acquire(500)  # larger than the budget, but nothing else is in flight
    assert not budget.try_acquire(1) and budget.peak == 500
    assert not budget.acquire(1, _set())  # a stopped wait gives up


def _set() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def test_batches_close_at_half_the_byte_budget(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 6)
    free = load_recipe(recipe(None)).score_many([tmp_path / "imgs"])
    test_plugins.reset()
    data = recipe(None, scorers=[{"name": "test_brightness", "params": {"batch_size": 16}}])
    data["runtime"]["max_inflight_mb"] = 4.5 * IMAGE_BYTES / 2**20  # two images per flush
    pipe = load_recipe(data)
    bounded = pipe.score_many([tmp_path / "imgs"])
    assert [len({source for source, _ in b}) for b in test_plugins.batches] == [2, 2, 2]
    assert pipe.budget_peak <= 4.5 * IMAGE_BYTES
    assert [r.score for r in bounded] == [r.score for r in free]


def test_an_image_above_the_budget_runs_alone(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 3)
    data = recipe(None)
    data["runtime"]["max_inflight_mb"] = 0.5 * IMAGE_BYTES / 2**20
    pipe = load_recipe(data)
    results = pipe.score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    assert all(len({source for source, _ in b}) == 1 for b in test_plugins.batches)
    assert pipe.budget_peak == IMAGE_BYTES  # one at a time


class _Gated(QuadrantSegmenter):
    """Signals when it segments the last image."""

    last_started = threading.Event()

    def segment(self, image):
        if int(image[-1, -1, 0]) == (20 + 23 * 3) % 230:  # img03's base grey
            type(self).last_started.set()
        return super().segment(image)


class _WaitsForSegmentation(BrightnessScorer):
    """Scoring the first flush's batch waits until the next images are being segmented."""

    overlapped: list[bool] = []

    def score(self, views, standard):
        if any("img00" in v.source for v in views):
            type(self).overlapped.append(_Gated.last_started.wait(20))
        return super().score(views, standard)


def test_segmentation_of_the_next_images_overlaps_scoring(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 4)
    _Gated.last_started.clear()
    _WaitsForSegmentation.overlapped.clear()
    data = recipe(
        None,
        segmenter={"name": f"{__name__}:_Gated"},
        scorers=[{"name": f"{__name__}:_WaitsForSegmentation", "params": {"batch_size": 8}}],
    )
    data["runtime"].update(chunk_images=2, allow_imports=True)  # flushes after {img00, img01}, {img02, img03}
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    assert _WaitsForSegmentation.overlapped == [True]


class _NoWeights(QuadrantSegmenter):
    def segment(self, image):
        raise ModelUnavailable("sam-x", "not found")


def test_a_user_error_in_a_stage_thread_stops_the_run_and_its_threads(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    data = recipe(None, segmenter={"name": f"{__name__}:_NoWeights"})
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    with pytest.raises(ModelUnavailable, match="sam-x"):
        load_recipe(data).score_many([tmp_path / "imgs"])
    assert stage_threads() == []


def test_an_interrupt_stops_every_stage(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 6)
    data = recipe(None, scorers=[{"name": "test_brightness", "params": {"batch_size": 2, "interrupt_after": 1}}])
    data["runtime"]["chunk_images"] = 1
    with pytest.raises(KeyboardInterrupt):
        load_recipe(data).score_many([tmp_path / "imgs"])
    assert stage_threads() == []


def test_results_keep_input_order_across_flushes_with_errors_and_cached_rows(
    tmp_path: Path, test_plugins: Recorder
) -> None:
    paths = write_images(tmp_path / "imgs", 5)
    store = tmp_path / "s.sqlite"
    load_recipe(recipe(store)).score_many(paths[1::2])  # img01, img03 are stored
    (tmp_path / "imgs" / "img02b.png").write_bytes(b"")
    data = recipe(store)
    data["runtime"]["chunk_images"] = 2
    pipe = load_recipe(data)
    results = pipe.score_many([tmp_path / "imgs"])
    names = [Path(r.path).name for r in results]
    assert names == ["img00.png", "img01.png", "img02.png", "img02b.png", "img03.png", "img04.png"]
    assert [r.error is not None for r in results] == [False, False, False, True, False, False]
    assert pipe.stats["results_cached"] == 2 and pipe.stats["views_scored"] == 12
    assert np.isfinite([r.score for r in results if r.error is None]).all()


def test_device_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert thread_share(2) == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}
    assert thread_share(32)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice is kept
    assert thread_share(2)["OMP_NUM_THREADS"] == "3"
