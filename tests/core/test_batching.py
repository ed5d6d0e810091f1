"""Batches form from views as they arrive (never waiting for a chunk of images), sorted and
packed by cost, and a view in flight is scored once however many identical files show it."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from helpers import BrightnessScorer, QuadrantSegmenter, Recorder, recipe, write_images
from iqa_core.api import Region
from iqa_core.pipeline import load_recipe
from iqa_core.pipeline.batches import Ledger, Pending, Pool
from iqa_core.pipeline.items import Item

pytestmark = pytest.mark.usefixtures("test_plugins")


class _Counted(QuadrantSegmenter):
    """Counts the images it has segmented; takes 20 ms an image, as a model would."""

    done = 0
    lock = threading.Lock()

    def segment(self, image):
        time.sleep(0.02)
        out = super().segment(image)
        with type(self).lock:
            type(self).done += 1
        return out


class _SeesProgress(BrightnessScorer):
    """Records, for every batch, how many images had been segmented when it was scored."""

    seen: list[int] = []

    def score(self, views, standard):
        type(self).seen.append(_Counted.done)
        return super().score(views, standard)


def test_scoring_starts_before_a_chunk_of_images_is_segmented(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 10)  # 10 distinct greys
    _Counted.done = 0
    _SeesProgress.seen.clear()
    data = recipe(
        None,
        segmenter={"name": f"{__name__}:_Counted"},
        scorers=[{"name": f"{__name__}:_SeesProgress", "params": {"batch_size": 4}}],
    )
    data["runtime"].update(chunk_images=32, batch_lookahead=1, allow_imports=True)
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    # 4 views an image, batches of 4: the first batch is one image's views, scored while the
    # segmenter is a few images ahead, not after all 10 (nor the chunk of 32)
    assert _SeesProgress.seen[0] < 5
    assert len(_SeesProgress.seen) == 10


class _Slow(BrightnessScorer):
    """Takes its time, so the next images are queued while a batch is being scored."""

    def score(self, views, standard):
        time.sleep(0.2)
        return super().score(views, standard)


def test_identical_files_are_scored_once_across_flushes(tmp_path: Path, test_plugins: Recorder) -> None:
    [first] = write_images(tmp_path / "imgs", 1)
    for i in range(1, 6):
        shutil.copy(first, tmp_path / "imgs" / f"copy{i}.png")
    data = recipe(None, scorers=[{"name": f"{__name__}:_Slow"}])
    data["runtime"].update(chunk_images=1, allow_imports=True)  # a flush after every image
    pipe = load_recipe(data)
    results = pipe.score_many([tmp_path / "imgs"])
    assert len({r.score for r in results}) == 1 and results[0].error is None
    assert pipe.stats["views_scored"] == 4  # one image's views; the copies wait for them or read the store
    assert len(test_plugins.views) == 4


def test_results_equal_whatever_the_lookahead(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 7)
    scores = []
    for lookahead in (1, 3, 50):
        data = recipe(None)
        data["runtime"]["batch_lookahead"] = lookahead
        scores.append([r.score for r in load_recipe(data).score_many([tmp_path / "imgs"])])
    assert scores[0] == scores[1] == scores[2]


class _TokenScorer(BrightnessScorer):
    """Views cost a token per 100 pixels, known once loaded (as a processor's count is)."""

    class Params(BrightnessScorer.Params):
        batch_size: int = 8
        batch_tokens: int | None = None

    loaded = False

    def load(self, standard) -> None:
        super().load(standard)
        self.loaded = True

    def view_tokens(self, size: tuple[int, int]) -> int | None:
        return size[0] * size[1] // 100 if self.loaded else None


def _pending(tokens: list[int]) -> list[Pending]:
    item = Item(0, "x.png")
    region = Region("global", (0, 0, 1, 1), 1.0)
    return [Pending(("h", f"v{i}", "s", "p"), item, region, t, t) for i, t in enumerate(tokens)]


def test_a_pool_sorts_by_cost_and_packs_by_views_and_tokens() -> None:
    pool = Pool(_TokenScorer({"batch_size": 3, "batch_tokens": 100}), lookahead=2)
    assert pool.add(_pending([50, 10, 40, 30, 20])) == []  # 5 < 3 x 2 views: nothing is ready yet
    ready = pool.add(_pending([5, 70]))  # now 7: the oldest 6 are packed, the 7th waits
    costs = [[v.cost for v in batch] for batch in ready]
    assert costs == [[5, 10, 20], [30, 40], [50]]  # 3 views at most; 30 + 40 + 50 > 100 tokens
    assert [v.cost for batch in pool.flush() for v in batch] == [70]
    assert pool.flush() == []


def test_batches_keep_to_the_token_budget_end_to_end(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 4)
    data = recipe(None, scorers=[{"name": f"{__name__}:_TokenScorer", "params": {"batch_tokens": 40}}])
    data["runtime"]["allow_imports"] = True
    results = load_recipe(data).score_many([tmp_path / "imgs"])
    assert all(r.error is None for r in results)
    for batch in test_plugins.batches:  # a 64x48 view is 30 tokens, a quadrant 7: at most 40 in a batch
        assert sum(_tokens(key) for _, key in batch) <= 40 or len(batch) == 1
    assert max(len(b) for b in test_plugins.batches) > 1


def _tokens(key: str) -> int:
    if key == "whole":
        return 64 * 48 // 100
    x0, y0, x1, y1 = map(int, key.split(":")[1].split(","))
    return (x1 - x0) * (y1 - y0) // 100


def test_a_delivered_row_reaches_every_waiting_image() -> None:
    ledger, key = Ledger(), ("h", "whole", "s", "p")
    a, b = Item(0, "a.png"), Item(1, "b.png")
    for item in (a, b):
        item.levels["s"], item.failed["s"] = {}, {}
        with ledger.lock:
            ledger.claim("s", key, item)
    assert ledger.waiting("s", key) and a.missing == b.missing == 1
    ledger.deliver("s", key, None, "cannot cut")
    assert a.missing == b.missing == 0 and a.failed["s"][key] == b.failed["s"][key] == "cannot cut"
    assert not ledger.waiting("s", key)
