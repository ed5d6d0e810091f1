"""Stage 6, finish: level probabilities -> region scores (decode) -> per-scorer score
(aggregate) -> image score (ensemble), stored as the image's result."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import following
from ..api import ImageResult, LevelProbs, Region, RegionScore, region_dict
from ..decode import decode
from ..store import ViewKey
from .items import Item, describe

if TYPE_CHECKING:
    from .core import Pipeline


def result(pipeline: Pipeline, item: Item) -> ImageResult:
    """An image whose every view is in: its cached result, its error row, or its new result."""
    with pipeline.store_lock:  # the scoring thread counts its batches meanwhile
        for label, stored in item.stored.items():
            for levels in stored:
                following.count(pipeline.stats, label, levels)
    if item.cached is not None:
        pipeline.stats["results_cached"] += 1
        return item.cached
    if item.error is not None or item.loaded is None:
        return ImageResult(item.path, content_hash=item.content_hash, error=item.error)
    return _finish(pipeline, item)


def _finish(pipeline: Pipeline, item: Item) -> ImageResult:
    loaded = item.loaded
    assert loaded is not None
    keys = {lab: [pipeline.views.key(loaded, r, sc, std) for r in item.regions] for lab, sc, std in pipeline.scorers}
    return from_levels(
        pipeline, item.path, loaded.content_hash, loaded.size, item.regions, keys, item.levels, item.failed
    )


def from_levels(
    pipeline: Pipeline,
    path: str,
    digest: str,
    size: tuple[int, int],
    regions: list[Region],
    keys: dict[str, list[ViewKey]],
    levels: dict[str, dict[ViewKey, LevelProbs]],
    failed: dict[str, dict[ViewKey, str]],
) -> ImageResult:
    """An image's result from its regions, per scorer label the view key of each region, and
    the level probabilities (or failures) found for those keys; stored. The Ray executor's
    scoring step finishes images with it too, from views cut in another process."""
    # a failed view fails every image that shows it (identical files)
    error = next((failed[label][k] for label in keys for k in keys[label] if k in failed.get(label, {})), None)
    if error is not None:
        return ImageResult(path, content_hash=digest, size=size, error=f"{path}: {error}")
    rows = [RegionScore(i, region) for i, region in enumerate(regions)]
    per_scorer: dict[str, float] = {}
    ranges = []
    try:
        for label, _, _ in pipeline.scorers:
            lp = [levels[label][k] for k in keys[label]]
            stacked = LevelProbs(np.vstack([x.probs for x in lp]), lp[0].values)
            scores = decode(stacked, pipeline.recipe.decode)
            for row, s in zip(rows, scores):
                row.scores[label] = float(s)
            per_scorer[label] = pipeline.aggregate.combine(scores, regions)
            ranges.append((min(stacked.values), max(stacked.values)))
        final = pipeline.ensemble.combine(np.array(list(per_scorer.values())), ranges)
    except ValueError as exc:
        return ImageResult(path, content_hash=digest, size=size, error=describe("aggregation", exc, path))
    with pipeline.store_lock:
        pipeline.store.put_result(pipeline.key, digest, final, per_scorer, [region_dict(r) for r in rows], size)
    return ImageResult(path, final, per_scorer, rows, digest, size)
