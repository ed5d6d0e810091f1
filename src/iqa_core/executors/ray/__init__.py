"""``executor: ray``: the pipeline's stages as Ray Data steps.

    read + segment (actors holding the segmenter) -> regions + views (CPU tasks)
    -> prepare + score (actors holding the scorers) -> finish (the driver)

A row is a batching group of images (see ``wire``). On a GPU cluster each GPU hosts a
segmenter actor (0.25) and a scorer actor (0.75), so segmentation of the next groups
overlaps scoring; regions and views are cut on any CPU. The driver sends each image's
stored rows (masks, view scores from any recipe) along with its path, so no step
recomputes what the store has; it stores what the steps send back and finishes each
image, so a Ray run leaves the results and store rows a local run would. Input paths
must be readable on every node (a shared or mounted file system).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...api import ImageResult
from ...errors import ImageError, IQAError
from ...images import content_hash, decoded_bytes, read_file
from ...pipeline.budget import ByteBudget
from ...pipeline.items import from_store
from ...pipeline.segment import closes_group
from ...plugins import manager
from ..placement import worker_recipe
from .finish import results
from .score import ScoreStep
from .segment import SegmentStep
from .views import cut_views
from .wire import Group

if TYPE_CHECKING:
    from ...pipeline import Pipeline

MODEL_ACTOR_CPUS = 0.5  # a segmenter and a scorer actor leave a node's next CPU to the views step


def run_on_ray(pipeline: Pipeline, paths: Sequence[str], progress: bool = False) -> dict[str, ImageResult]:
    """Score ``paths`` on Ray (``runtime.ray_address``, or a local instance); results by path."""
    try:
        import ray
    except ImportError:
        raise IQAError("executor 'ray' needs Ray: pip install 'iqa[ray]'") from None
    if pipeline.views.prescale:  # its views step holds no scorer to tell the input sizes
        raise IQAError("regions.prescale is not supported with executor: ray yet; use executor: local or devices")
    done: dict[str, ImageResult] = {}
    groups: list[list[dict[str, str]]] = []
    for group in batching_groups(pipeline, paths):
        pending = []
        for path in group:
            try:
                digest = content_hash(read_file(path))  # a FIFO or device is refused, not read
            except ImageError:  # unreadable: the first step records the error row
                pending.append({"path": path, "seed": ""})
                continue
            cached = pipeline.store.get_result(pipeline.key, digest)
            if cached is not None:
                done[path] = from_store(path, digest, cached)
                pipeline.stats["results_cached"] += 1
            else:
                pending.append({"path": path, "seed": json.dumps(pipeline.store.export_rows([digest]))})
        if pending:
            groups.append(pending)
    if groups:
        for result in _run(ray, pipeline, groups, progress):
            done[result.path] = result
    hook, recipe = manager().hook, pipeline.recipe.model_dump(mode="json")
    for path in paths:
        hook.iqa_image_scored(result=done[path], recipe=recipe)
        pipeline.stats["images"] += 1
        pipeline.stats["failed"] += done[path].error is not None
    return done


def batching_groups(pipeline: Pipeline, paths: Sequence[str]) -> list[list[str]]:
    """The paths in the local run's batching groups (cached results count, as they do there)."""
    runtime = pipeline.recipe.runtime
    limit = ByteBudget(int(runtime.max_inflight_mb * 2**20)).limit // 2
    groups: list[list[str]] = []
    count = held = 0
    for path in paths:
        need = decoded_bytes(path, runtime.max_pixels)
        if not groups or closes_group(count, held, need, runtime.chunk_images, limit):
            groups.append([])
            count = held = 0
        groups[-1].append(path)
        count += 1
        held += need
    return groups


def _run(ray: Any, pipeline: Pipeline, groups: list[list[dict[str, str]]], progress: bool) -> Iterator[ImageResult]:
    """Run the steps over ``groups``; each group's results as soon as it is scored."""
    runtime = pipeline.recipe.runtime
    if not ray.is_initialized():
        ray.init(address=runtime.ray_address, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    for row in dataset(ray, pipeline, groups).iter_rows():
        group = Group.read({name: [value] for name, value in row.items()}, 0)
        group.raise_fatal()
        pipeline.stats.update(group.stats)
        yield from results(pipeline, group)


def dataset(ray: Any, pipeline: Pipeline, groups: list[list[dict[str, str]]]) -> Any:
    """The Ray Data steps over ``groups`` (each image's path and stored rows), not yet run."""
    runtime = pipeline.recipe.runtime
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = runtime.ray_actors or max(gpus, 1)
    recipe = worker_recipe(pipeline, None)
    recipe["runtime"]["store"] = None
    built = {"factory": type(pipeline), "recipe": recipe}
    ds = ray.data.from_items([{"images": json.dumps(group)} for group in groups])
    if pipeline.segments:
        ds = ds.map_batches(
            SegmentStep,
            fn_constructor_kwargs=built,
            batch_size=1,  # a group of images (runtime.chunk_images)
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=0.25 if gpus else 0,
            num_cpus=MODEL_ACTOR_CPUS,
        )
    ds = ds.map_batches(cut_views, fn_kwargs={"factory": type(pipeline), "recipe": json.dumps(recipe)}, batch_size=1)
    return ds.map_batches(
        ScoreStep,
        fn_constructor_kwargs=built,
        batch_size=1,  # a group: the views of its images, batched per scorer
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=0.75 if gpus else 0,
        num_cpus=MODEL_ACTOR_CPUS,
    )
