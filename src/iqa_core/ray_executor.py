"""``executor: ray``: segmentation and scoring as Ray Data stages over actor pools.

Stage 1 actors hold the segmenter, stage 2 actors the scorers; on a GPU cluster
each GPU hosts one of each (0.25 + 0.75 of the device), so segmentation of the
next images overlaps scoring. Workers keep an in-memory store and return their
rows; the driver writes them into the run's store, so a Ray run leaves the same
rows a local run would, and a rerun (local or Ray) recomputes nothing.
Input paths must be readable on every node (a shared or mounted file system).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .api import ImageResult
from .engine import Pipeline
from .errors import IQAError
from .images import read_image
from .runner import worker_recipe
from .store import Store


class SegmentStage:
    """Ray actor: read each image and run the segmenter once per image."""

    def __init__(self, recipe: dict[str, Any]) -> None:
        self.pipeline = Pipeline.from_recipe(recipe, Store(None))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        masks = []
        for path in batch["path"]:
            try:
                item = read_image(str(path), self.pipeline.recipe.runtime.max_pixels)
                masks.append(json.dumps([item.content_hash, self.pipeline.segment(item)]))
            except Exception:  # the scoring stage reads it again and records the error row
                masks.append("")
        return {"path": [str(p) for p in batch["path"]], "masks": masks}


class ScoreStage:
    """Ray actor: score a batch of images, views of all of them batched together."""

    def __init__(self, recipe: dict[str, Any]) -> None:
        self.pipeline = Pipeline.from_recipe(recipe, Store(None))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        pipeline = self.pipeline
        if "masks" in batch:
            seg_key = pipeline.segmenter.cache_key()
            for cell in batch["masks"]:
                if cell:
                    digest, rles = json.loads(str(cell))
                    pipeline.store.put_masks(digest, seg_key, rles)
        results = pipeline.score_many([str(p) for p in batch["path"]])
        rows = pipeline.store.export_rows([r.content_hash for r in results if r.content_hash])
        payload = json.dumps({"rows": rows, "stats": dict(pipeline.stats)})
        pipeline.stats.clear()
        return {
            "result": [json.dumps(r.to_dict()) for r in results],
            "payload": [payload] + [""] * (len(results) - 1),
        }


def run_on_ray(pipeline: Pipeline, paths: Sequence[str], progress: bool = False) -> dict[str, ImageResult]:
    """Score ``paths`` on Ray (``runtime.ray_address``, or a local instance); results by path."""
    try:
        import ray
    except ImportError:
        raise IQAError("executor 'ray' needs Ray: pip install 'iqa[ray]'") from None
    done = {p: r for p in paths if (r := pipeline.cached_result(p)) is not None}
    pending = [p for p in paths if p not in done]
    if not pending:
        return done
    runtime = pipeline.recipe.runtime
    if not ray.is_initialized():
        ray.init(address=runtime.ray_address, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    gpus = int(ray.cluster_resources().get("GPU", 0))
    pools = max(gpus, 1)
    recipe = worker_recipe(pipeline, None)
    recipe["runtime"]["store"] = None
    chunk = runtime.chunk_images
    ds = ray.data.from_items([{"path": p} for p in pending])
    if pipeline.segments:
        ds = ds.map_batches(
            SegmentStage, fn_constructor_kwargs={"recipe": recipe}, batch_size=chunk,
            concurrency=pools, num_gpus=0.25 if gpus else 0,
        )
    ds = ds.map_batches(
        ScoreStage, fn_constructor_kwargs={"recipe": recipe}, batch_size=chunk,
        concurrency=pools, num_gpus=0.75 if gpus else 0,
    )
    for row in ds.iter_rows():
        if row["payload"]:
            payload = json.loads(row["payload"])
            pipeline.store.import_rows(payload["rows"])
            pipeline.stats.update(payload["stats"])
        result = ImageResult.from_dict(json.loads(row["result"]))
        done[result.path] = result
    return done
