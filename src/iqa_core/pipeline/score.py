"""Stages 4 and 5: prepare each scorer's batches on the CPU, then score them on the accelerator.

:func:`prepared` runs in its own thread: per window and scorer it looks up stored level
probabilities, sorts the missing views by size (less padding for dynamic-resolution
models), cuts them and runs the scorer's ``prepare``. :func:`forward` runs in the calling
thread, one batch at a time, and stores what it scores. A batch that fails is retried view
by view, so one bad view fails only its image.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..api import LevelProbs, Region, Scorer, Standard, View
from ..errors import IQAError
from ..store import ViewKey
from .items import Item, Window, describe

if TYPE_CHECKING:
    from .core import Pipeline


@dataclass
class Batch:
    """One scorer's batch of views, cut and (unless ``prepare`` failed: None) prepared."""

    window: Window
    label: str
    keys: list[ViewKey]
    views: list[View]
    prepared: Any
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
    window.failed[label] = {}
    pipeline.stats["views_cached"] += len(found)
    pending = sorted((k for k in wanted if k not in found), key=lambda k: _area(wanted[k][1].bbox))
    if pending:
        pipeline.load_scorer(label)
    step = max(1, scorer.batch_size)
    for i in range(0, len(pending), step):
        batch = Batch(window, label, [], [], None)
        for key in pending[i : i + step]:
            item, region = wanted[key]
            try:
                batch.views.append(pipeline.views.cut(item.loaded, region, key))  # type: ignore[arg-type]
                batch.keys.append(key)
            except Exception as exc:  # a view that cannot be cut fails its image
                batch.failed[key] = describe("cutting a view", exc)
        if batch.keys:
            try:
                with pipeline.prepare_lock(label):
                    batch.prepared = scorer.prepare(batch.views, std)
            except Exception:  # retried in the scoring thread, view by view, to find the bad one
                batch.prepared = None
        yield batch


def forward(pipeline: Pipeline, batch: Batch) -> None:
    """Score one batch and store its rows; record failed views in its window."""
    found = batch.window.levels[batch.label]
    failed = batch.window.failed[batch.label]
    failed.update(batch.failed)
    if not batch.keys:
        return
    _, scorer, std = pipeline.scorer(batch.label)
    calls = _call(pipeline, batch.label, scorer, std, batch.keys, batch.views, failed, batch.prepared)
    for keys, levels in calls:
        with pipeline.store_lock:
            pipeline.store.put_levels(keys, levels)
        for j, key in enumerate(keys):
            found[key] = levels.row(j)


def _call(
    pipeline: Pipeline,
    label: str,
    scorer: Scorer,
    std: Standard,
    keys: list[ViewKey],
    views: list[View],
    failed: dict[ViewKey, str],
    prepared: Any = None,
) -> Iterator[tuple[list[ViewKey], LevelProbs]]:
    """One batched call; if it fails, view by view. A retry's ``prepare`` takes the scorer's
    prepare lock, so the processor is never used by two threads at once."""
    try:
        if prepared is None:
            with pipeline.prepare_lock(label):
                prepared = scorer.prepare(views, std)
        levels = scorer.forward(prepared, std)
        pipeline.stats["scorer_calls"] += 1
        pipeline.stats["views_scored"] += len(views)
        check_levels(label, levels, len(views))
        if levels.top_is_level is not None:  # the prompt-following diagnostic
            pipeline.stats["views_off_level"] += int(np.count_nonzero(~levels.top_is_level))
        yield keys, levels
        return
    except IQAError:
        raise
    except Exception as exc:
        if len(views) == 1:
            failed[keys[0]] = describe(f"scorer {label!r}", exc)
            return
    for key, view in zip(keys, views):
        yield from _call(pipeline, label, scorer, std, [key], [view], failed)


def check_levels(label: str, levels: LevelProbs, n: int) -> None:
    if len(levels) != n:
        raise ValueError(f"scorer {label!r} returned {len(levels)} rows for {n} views")
    if not np.all(np.isfinite(levels.probs)) or np.any(levels.probs < 0):
        raise ValueError(f"scorer {label!r} returned negative or non-finite level probabilities")
    if not np.allclose(levels.probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"scorer {label!r} returned level probabilities whose rows do not sum to 1")
