"""``executor: ray``: segmentation and scoring as Ray Data stages over actor pools.

Stage 1 actors hold the segmenter, stage 2 actors the scorers; on a GPU cluster
each GPU hosts one of each (0.25 + 0.75 of the device), so segmentation of the
next images overlaps scoring. The driver sends each image's stored rows (masks,
view scores from any recipe) along with its path, so workers recompute nothing
the store already has; workers send back the rows they add, and the driver
writes them into the run's store: a Ray run leaves the rows a local run would.
Input paths must be readable on every node (a shared or mounted file system).
"""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..api import ImageResult
from ..errors import ImageError, IQAError
from ..images import content_hash, read_file, read_image
from ..store import Store
from .placement import worker_recipe

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def _pickled(exc: IQAError) -> str:
    try:
        return pickle.dumps(exc).hex()
    except Exception:  # an attribute that does not pickle: the message is what matters
        return pickle.dumps(IQAError(str(exc))).hex()


class _Stage(ABC):
    """A Ray actor holding a pipeline whose in-memory store holds one batch at a time.

    A user error (e.g. weights that cannot be loaded) travels back as data in the
    ``fatal`` column: Ray Data would wrap a raised one into a long traceback.
    """

    def __init__(self, factory: type[Pipeline], recipe: dict[str, Any]) -> None:
        self.pipeline = factory.from_recipe(recipe, Store(None))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        n = len(batch["path"])
        fatal = next((str(c) for c in batch.get("fatal", []) if c), "")
        if not fatal:
            try:
                self.pipeline.store.close()
                self.pipeline.store = Store(None)  # the rows of earlier batches went back already
                for cell in batch["seed"]:
                    if cell:
                        self.pipeline.store.import_rows(json.loads(str(cell)))
                return {**self.run(batch), "fatal": [""] * n}
            except IQAError as exc:
                fatal = _pickled(exc)
        return {**self.empty(batch), "fatal": [fatal] * n}

    @abstractmethod
    def run(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """This stage's work on one batch."""

    @abstractmethod
    def empty(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """This stage's columns with nothing in them (after a user error)."""


class SegmentStage(_Stage):
    """Read each image and run the segmenter once per image (unless its masks are seeded)."""

    def empty(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        paths = [str(p) for p in batch["path"]]
        return {"path": paths, "seed": [""] * len(paths), "masks": [""] * len(paths)}

    def run(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """Each image's masks, or its error (the scoring stage turns that into its error row)."""
        masks = []
        for path in batch["path"]:
            try:
                item = read_image(str(path), self.pipeline.recipe.runtime.max_pixels)
                masks.append(json.dumps({"hash": item.content_hash, "masks": self.pipeline.segment(item)}))
            except ImageError as exc:
                masks.append(json.dumps({"error": str(exc)}))
            except IQAError:  # e.g. the segmenter's weights: the run stops with this message
                raise
            except Exception as exc:  # one image's failure
                masks.append(json.dumps({"error": f"{path}: segmentation failed: {type(exc).__name__}: {exc}"}))
        return {"path": [str(p) for p in batch["path"]], "seed": list(map(str, batch["seed"])), "masks": masks}


class ScoreStage(_Stage):
    """Score a batch of images, the views of all of them batched together."""

    def empty(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return {"result": [""] * len(batch["path"]), "payload": [""] * len(batch["path"])}

    def run(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        pipeline = self.pipeline
        paths = [str(p) for p in batch["path"]]
        failed: dict[str, ImageResult] = {}
        for path, cell in zip(paths, batch.get("masks", [""] * len(paths))):
            segmented = json.loads(str(cell)) if cell else {}
            if "error" in segmented:  # not read or not segmented: not tried again here
                failed[path] = ImageResult(path, error=segmented["error"])
            elif segmented:
                pipeline.store.put_masks(segmented["hash"], pipeline.segmenter.cache_key(), segmented["masks"])
        todo = [p for p in paths if p not in failed]
        scored = dict(zip(todo, pipeline.score_many(todo))) if todo else {}
        results = [failed.get(p) or scored[p] for p in paths]
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
    done: dict[str, ImageResult] = {}
    pending: list[dict[str, str]] = []
    for path in paths:
        try:
            digest = content_hash(read_file(path))  # a FIFO or device is refused, not read
        except ImageError:  # unreadable: the worker records the error row
            pending.append({"path": path, "seed": ""})
            continue
        cached = pipeline.store.get_result(pipeline.key, digest)
        if cached is not None:
            done[path] = ImageResult.from_dict({**cached, "path": path, "content_hash": digest})
            continue
        pending.append({"path": path, "seed": json.dumps(pipeline.store.export_rows([digest]))})
    pipeline.stats["results_cached"] += len(done)
    pipeline.stats["images"] += len(done)
    if not pending:
        return done
    runtime = pipeline.recipe.runtime
    if not ray.is_initialized():
        ray.init(address=runtime.ray_address, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = runtime.ray_actors or max(gpus, 1)
    recipe = worker_recipe(pipeline, None)
    recipe["runtime"]["store"] = None
    ds = ray.data.from_items(pending)
    if pipeline.segments:
        ds = ds.map_batches(
            SegmentStage,
            fn_constructor_kwargs={"factory": type(pipeline), "recipe": recipe},
            batch_size=runtime.chunk_images,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=0.25 if gpus else 0,
        )
    ds = ds.map_batches(
        ScoreStage,
        fn_constructor_kwargs={"factory": type(pipeline), "recipe": recipe},
        batch_size=runtime.chunk_images,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=0.75 if gpus else 0,
    )
    for row in ds.iter_rows():
        if row["fatal"]:
            raise pickle.loads(bytes.fromhex(row["fatal"]))
        if row["payload"]:
            payload = json.loads(row["payload"])
            pipeline.store.import_rows(payload["rows"])
            pipeline.stats.update(payload["stats"])
        result = ImageResult.from_dict(json.loads(row["result"]))
        done[result.path] = result
    return done
