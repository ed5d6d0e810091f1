"""Stage 6, finish: level probabilities -> region scores (decode) -> per-scorer score
(aggregate) -> image score (ensemble), stored as the image's result."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import following
from ..api import ImageResult, LevelProbs, RegionScore, region_dict
from ..decode import decode
from .items import Item, describe

if TYPE_CHECKING:
    from .core import Pipeline


def result(pipeline: Pipeline, item: Item) -> ImageResult:
    """An image whose every view is in: its cached result, its error row, or its new result."""
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
    path, digest, size = item.path, loaded.content_hash, loaded.size
    keys = {lab: [pipeline.views.key(loaded, r, sc, std) for r in item.regions] for lab, sc, std in pipeline.scorers}
    # a failed view fails every image that shows it (identical files)
    error = next((item.failed[label][k] for label in keys for k in keys[label] if k in item.failed[label]), None)
    if error is not None:
        return ImageResult(path, content_hash=digest, size=size, error=f"{path}: {error}")
    rows = [RegionScore(i, region) for i, region in enumerate(item.regions)]
    per_scorer: dict[str, float] = {}
    ranges = []
    try:
        for label, _, _ in pipeline.scorers:
            lp = [item.levels[label][k] for k in keys[label]]
            stacked = LevelProbs(np.vstack([x.probs for x in lp]), lp[0].values)
            scores = decode(stacked, pipeline.recipe.decode)
            for row, s in zip(rows, scores):
                row.scores[label] = float(s)
            per_scorer[label] = pipeline.aggregate.combine(scores, item.regions)
            ranges.append((min(stacked.values), max(stacked.values)))
        final = pipeline.ensemble.combine(np.array(list(per_scorer.values())), ranges)
    except ValueError as exc:
        return ImageResult(path, content_hash=digest, size=size, error=describe("aggregation", exc, path))
    with pipeline.store_lock:
        pipeline.store.put_result(pipeline.key, digest, final, per_scorer, [region_dict(r) for r in rows], size)
    return ImageResult(path, final, per_scorer, rows, digest, size)
