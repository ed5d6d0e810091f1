"""Stages 4 and 5: prepare each scorer's batches on the CPU, then score them on the accelerator.

:func:`prepared` runs in its own thread: per window and scorer it looks up stored level
probabilities, sorts the missing views by size (less padding for dynamic-resolution
models), cuts them and runs the scorer's ``prepare``. :func:`forward` runs in the calling
thread, one batch at a time, and stores what it scores.
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
from .items import Item, Window, describe

if TYPE_CHECKING:
    from .core import Pipeline


@dataclass
class Batch:
    """One scorer's batch: its views' keys and sources, prepared (None: ``prepare`` failed).

    The cut views are dropped once prepared (a crop of a large image is large); a retry cuts again.
    """

    window: Window
    label: str
    keys: list[ViewKey]
    sources: list[tuple[Item, Region]]
    prepared: Any = None
    failed: dict[ViewKey, str] = field(default_factory=dict)  # views that could not be cut


def _area(bbox: tuple[int, int, int, int]) -> int:
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])


def prepared(pipeline: Pipeline, windows: Iterable[Window]) -> Iterator[Batch | Window]:
    """Every window's batches, then the window itself once all its batches are out."""
    for window in windows:
        for label, scorer, std in pipeline.scorers:
            yield from _batches(pipeline, window, label, scorer, std)
        yield window


def _batches(pipeline: Pipeline, window: Window, label: str, scorer: Scorer, std: Standard) -> Iterator[Batch]:
    wanted: dict[ViewKey, tuple[Item, Region]] = {}
    for item in window.work:
        for region in item.regions:
            wanted.setdefault(pipeline.views.key(item.loaded, region, scorer, std), (item, region))  # type: ignore[arg-type]
    with pipeline.store_lock:
        found = pipeline.store.get_levels(wanted)
    window.levels[label] = found
    window.stored[label] = list(found.values())  # counted for prompt-following in the scoring thread
    window.failed[label] = {}
    pipeline.stats["views_cached"] += len(found)
    pending = sorted((k for k in wanted if k not in found), key=lambda k: _area(wanted[k][1].bbox))
    if pending:
        pipeline.load_scorer(label)
    step = max(1, scorer.batch_size)
    for i in range(0, len(pending), step):
        batch = Batch(window, label, [], [])
        views = []
        for key in pending[i : i + step]:
            try:
                views.append(_cut(pipeline, wanted[key], key, scorer))
                batch.keys.append(key)
                batch.sources.append(wanted[key])
            except Exception as exc:  # a view that cannot be cut fails its image
                batch.failed[key] = describe("cutting a view", exc)
        if views:
            start = time.perf_counter()
            try:
                with pipeline.prepare_lock(label):
                    batch.prepared = scorer.prepare(views, std)
            except Exception:  # retried in the scoring thread, view by view, to find the bad one
                batch.prepared = None
            pipeline.stats["prepare_s"] += time.perf_counter() - start
        yield batch


def _cut(pipeline: Pipeline, source: tuple[Item, Region], key: ViewKey, scorer: Scorer) -> View:
    item, region = source
    return pipeline.views.cut(item.loaded, region, key, scorer)  # type: ignore[arg-type]


def forward(pipeline: Pipeline, batch: Batch) -> None:
    """Score one batch and store its rows; if it fails, view by view, so one bad view fails only its image.

    A retry's ``prepare`` takes the scorer's prepare lock: the processor is never used by two threads at once.
    """
    failed = batch.window.failed[batch.label]
    failed.update(batch.failed)
    if not batch.keys:
        return
    _, scorer, std = pipeline.scorer(batch.label)
    if batch.prepared is not None:
        try:
            _store(
                pipeline, batch, batch.keys, _forward(pipeline, batch.label, scorer, std, batch.prepared, batch.keys)
            )
            return
        except IQAError:
            raise
        except Exception as exc:
            if len(batch.keys) == 1:
                failed[batch.keys[0]] = describe(f"scorer {batch.label!r}", exc)
                return
    for key, source in zip(batch.keys, batch.sources):
        try:
            view = _cut(pipeline, source, key, scorer)
            with pipeline.prepare_lock(batch.label):
                ready = scorer.prepare([view], std)
            _store(pipeline, batch, [key], _forward(pipeline, batch.label, scorer, std, ready, [key]))
        except IQAError:
            raise
        except Exception as exc:
            failed[key] = describe(f"scorer {batch.label!r}", exc)


def _forward(
    pipeline: Pipeline, label: str, scorer: Scorer, std: Standard, ready: Any, keys: list[ViewKey]
) -> LevelProbs:
    start = time.perf_counter()
    levels = scorer.forward(ready, std)
    pipeline.stats["forward_s"] += time.perf_counter() - start
    pipeline.stats["scorer_calls"] += 1
    pipeline.stats["views_scored"] += len(keys)
    check_levels(label, levels, len(keys))
    following.count(pipeline.stats, label, levels)
    return levels


def _store(pipeline: Pipeline, batch: Batch, keys: list[ViewKey], levels: LevelProbs) -> None:
    with pipeline.store_lock:
        pipeline.store.put_levels(keys, levels)
    found = batch.window.levels[batch.label]
    for j, key in enumerate(keys):
        found[key] = levels.row(j)


def check_levels(label: str, levels: LevelProbs, n: int) -> None:
    if len(levels) != n:
        raise ValueError(f"scorer {label!r} returned {len(levels)} rows for {n} views")
    if not np.all(np.isfinite(levels.probs)) or np.any(levels.probs < 0):
        raise ValueError(f"scorer {label!r} returned negative or non-finite level probabilities")
    if not np.allclose(levels.probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"scorer {label!r} returned level probabilities whose rows do not sum to 1")
