"""Stages 4 and 5: prepare each scorer's batches on the CPU, then score them on the accelerator.

:func:`prepared` runs in its own thread: per image and scorer it looks up stored level
probabilities, queues the missing views (``batches`` decides which share a batch), cuts
them and runs the scorer's ``prepare``. :func:`forward` runs in the calling thread, one
batch at a time, stores what it scores and delivers each row to the images waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import following
from ..api import LevelProbs, Region, Scorer, Standard, View
from ..errors import IQAError
from ..store import ViewKey
from .batches import Ledger, Pending, Pool
from .items import Flush, Item, describe

if TYPE_CHECKING:
    from .core import Pipeline


@dataclass
class Batch:
    """One scorer's batch: its views, prepared (None: ``prepare`` failed), and those that could not be cut.

    The cut views are dropped once prepared (a crop of a large image is large); a retry cuts again.
    """

    label: str
    views: list[Pending]
    prepared: Any = None
    failed: dict[ViewKey, str] = field(default_factory=dict)


def prepared(pipeline: Pipeline, stream: Iterable[Item | Flush], ledger: Ledger) -> Iterator[Batch | Item]:
    """Each image once its views are queued, then every batch that is ready (see ``batches``)."""
    pools = {label: Pool(scorer, pipeline.recipe.runtime.batch_lookahead) for label, scorer, _ in pipeline.scorers}
    for got in stream:
        if isinstance(got, Flush):
            ready = [(label, pool.flush()) for label, pool in pools.items()]
        else:
            ready = [
                (label, pools[label].add(_admit(pipeline, ledger, got, label, sc, std)))
                for label, sc, std in pipeline.scorers
            ]
            yield got  # before any batch holding its views: the scoring thread knows every image it delivers to
        for label, batches in ready:
            for views in batches:
                yield prepare(pipeline, label, views)
    for label, pool in pools.items():
        for views in pool.flush():
            yield prepare(pipeline, label, views)


def _admit(pipeline: Pipeline, ledger: Ledger, item: Item, label: str, scorer: Scorer, std: Standard) -> list[Pending]:
    """An image's views for one scorer: stored rows are taken, views already in flight are
    waited for, the rest are claimed and returned to be queued."""
    item.levels[label], item.failed[label], item.stored[label] = {}, {}, []
    if not item.to_score:
        return []
    loaded = item.loaded
    assert loaded is not None
    wanted: dict[ViewKey, Region] = {}
    for region in item.regions:
        wanted.setdefault(pipeline.views.key(loaded, region, scorer, std), region)
    claimed: list[tuple[ViewKey, Region]] = []
    with ledger.lock:
        rest = {key: region for key, region in wanted.items() if not ledger.waiting(label, key)}
        for key in wanted.keys() - rest.keys():  # an identical view in flight: its row will do
            ledger.claim(label, key, item)
        with pipeline.store_lock:
            found = pipeline.store.get_levels(rest)
        item.levels[label].update(found)
        item.stored[label] = list(found.values())
        for key, region in rest.items():
            if key not in found:
                ledger.claim(label, key, item)
                claimed.append((key, region))
    pipeline.stats["views_cached"] += len(found)
    if not claimed:
        return []
    pipeline.load_scorer(label)  # its cost hooks may need its processor
    new = []
    for key, region in claimed:
        size = pipeline.views.size(loaded, region, scorer)
        tokens = scorer.view_tokens(size)
        new.append(Pending(key, item, region, size[0] * size[1] if tokens is None else tokens, tokens))
    return new


def prepare(pipeline: Pipeline, label: str, pending: list[Pending]) -> Batch:
    """Cut a batch's views and run the scorer's ``prepare`` on them (in the prepare thread)."""
    _, scorer, std = pipeline.scorer(label)
    batch = Batch(label, [])
    views = []
    for view in pending:
        try:
            views.append(_cut(pipeline, view, scorer))
            batch.views.append(view)
        except Exception as exc:  # a view that cannot be cut fails its image
            batch.failed[view.key] = describe("cutting a view", exc)
    if views:
        start = time.perf_counter()
        try:
            with pipeline.prepare_lock(label):
                batch.prepared = scorer.prepare(views, std)
        except Exception:  # retried in the scoring thread, view by view, to find the bad one
            batch.prepared = None
        pipeline.stats["prepare_s"] += time.perf_counter() - start
    return batch


def _cut(pipeline: Pipeline, view: Pending, scorer: Scorer) -> View:
    if view.cut is not None:  # cut already (by the Ray views step)
        return view.cut
    return pipeline.views.cut(view.item.loaded, view.region, view.key, scorer)  # type: ignore[arg-type]


def forward(pipeline: Pipeline, ledger: Ledger, batch: Batch) -> None:
    """Score one batch, store its rows and deliver them; if it fails, view by view, so one bad
    view fails only the images that show it.

    A retry's ``prepare`` takes the scorer's prepare lock: the processor is never used by two threads at once.
    """
    label = batch.label
    for key, error in batch.failed.items():
        ledger.deliver(label, key, None, error)
    if not batch.views:
        return
    _, scorer, std = pipeline.scorer(label)
    if batch.prepared is not None:
        try:
            _store(
                pipeline,
                ledger,
                label,
                batch.views,
                _forward(pipeline, label, scorer, std, batch.prepared, batch.views),
            )
            return
        except IQAError:
            raise
        except Exception as exc:
            if len(batch.views) == 1:
                ledger.deliver(label, batch.views[0].key, None, describe(f"scorer {label!r}", exc))
                return
    for view in batch.views:
        try:
            cut = _cut(pipeline, view, scorer)
            with pipeline.prepare_lock(label):
                ready = scorer.prepare([cut], std)
            _store(pipeline, ledger, label, [view], _forward(pipeline, label, scorer, std, ready, [view]))
        except IQAError:
            raise
        except Exception as exc:
            ledger.deliver(label, view.key, None, describe(f"scorer {label!r}", exc))


def _forward(
    pipeline: Pipeline, label: str, scorer: Scorer, std: Standard, ready: Any, views: list[Pending]
) -> LevelProbs:
    start = time.perf_counter()
    levels = scorer.forward(ready, std)
    pipeline.stats["forward_s"] += time.perf_counter() - start
    pipeline.stats["scorer_calls"] += 1
    pipeline.stats["views_scored"] += len(views)
    check_levels(label, levels, len(views))
    with pipeline.store_lock:  # the caller counts stored views meanwhile
        following.count(pipeline.stats, label, levels)
    return levels


def _store(pipeline: Pipeline, ledger: Ledger, label: str, views: list[Pending], levels: LevelProbs) -> None:
    """Store first (a killed run resumes from it), then hand each row to the images waiting for it."""
    with pipeline.store_lock:
        pipeline.store.put_levels([view.key for view in views], levels)
    for j, view in enumerate(views):
        ledger.deliver(label, view.key, levels.row(j))


def check_levels(label: str, levels: LevelProbs, n: int) -> None:
    if len(levels) != n:
        raise ValueError(f"scorer {label!r} returned {len(levels)} rows for {n} views")
    if not np.all(np.isfinite(levels.probs)) or np.any(levels.probs < 0):
        raise ValueError(f"scorer {label!r} returned negative or non-finite level probabilities")
    if not np.allclose(levels.probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"scorer {label!r} returned level probabilities whose rows do not sum to 1")
