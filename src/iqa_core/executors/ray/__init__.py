"""``executor: ray``: the pipeline's stages as Ray Data steps; the driver never touches pixels.

    read + hash + look up + segment (actors holding the segmenter) -> regions + views (CPU
    tasks) -> prepare + score + finish (actors holding the scorers) -> the driver

The driver sends chunks of ``runtime.chunk_images`` paths, nothing read. Workers read each
file where its bytes are needed and hash it there; the first step asks the store's keeper
(an actor on the driver's node, ``keeper``) what is stored for those hashes, and splits the
chunk into the local run's batching groups (see ``wire``). On a GPU cluster each GPU hosts a
segmenter actor (0.25) and a scorer actor (0.75), so segmentation of the next groups
overlaps scoring; regions and views are cut on any CPU. The scoring step finishes each
image and sends back its result and the store rows the group made; the driver takes the
groups in input order, writes their rows to the store and yields their results, one group
at a time, so a Ray run leaves the results and store rows a local run would with the
driver's memory flat in the number of images. Inputs must be readable on every node (a
shared file system, or URIs); the store's file is read on the driver's node only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ...api import ImageResult
from ...errors import IQAError
from ...plugins import manager
from ..placement import worker_recipe
from .keeper import start_keeper
from .score import ScoreStep
from .segment import SegmentStep
from .views import cut_views
from .wire import Group

if TYPE_CHECKING:
    from ...pipeline import Pipeline

MODEL_ACTOR_CPUS = 0.5  # a segmenter and a scorer actor leave a node's next CPU to the views step


def iter_on_ray(pipeline: Pipeline, paths: Iterable[str], progress: bool = False) -> Iterator[ImageResult]:
    """Score ``paths`` on Ray (``runtime.ray_address``, or a local instance); results in input order,
    each group's as soon as it and those before it are scored."""
    try:
        import ray
    except ImportError:
        raise IQAError("executor 'ray' needs Ray: pip install 'iqa[ray]'") from None
    if pipeline.views.prescale:  # its views step holds no scorer to tell the input sizes
        raise IQAError("regions.prescale is not supported with executor: ray yet; use executor: local or devices")
    runtime = pipeline.recipe.runtime
    rows = chunks(paths, runtime.chunk_images)  # the names Ray Data is given: about 100 bytes an input
    if not rows:
        return
    if not ray.is_initialized():
        ray.init(address=runtime.ray_address, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.execution_options.preserve_order = True  # groups come back in input order
    keeper = start_keeper(ray, pipeline.store)
    hook, recipe = manager().hook, pipeline.recipe.model_dump(mode="json")
    try:
        for row in dataset(ray, pipeline, rows, keeper).iter_rows():
            group = Group.read({name: [value] for name, value in row.items()}, 0)
            group.raise_fatal()
            pipeline.stats.update(group.stats)
            pipeline.store.import_rows(group.rows)
            for data in group.results:
                result = ImageResult.from_dict(data)
                hook.iqa_image_scored(result=result, recipe=recipe)
                pipeline.stats["images"] += 1
                pipeline.stats["failed"] += result.error is not None
                yield result
        pipeline.stats["store_rows_repaired"] += ray.get(keeper.repaired.remote())
    finally:
        ray.kill(keeper)


def chunks(paths: Iterable[str], size: int) -> list[list[str]]:
    """The paths in chunks of ``size``: a batching group never spans two (``segment.closes_group``)."""
    out: list[list[str]] = []
    for path in paths:
        if not out or len(out[-1]) == size:
            out.append([])
        out[-1].append(path)
    return out


def dataset(ray: Any, pipeline: Pipeline, chunks: list[list[str]], keeper: Any) -> Any:
    """The Ray Data steps over ``chunks`` of paths, not yet run."""
    runtime = pipeline.recipe.runtime
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = runtime.ray_actors or max(gpus, 1)
    recipe = worker_recipe(pipeline, None)
    recipe["runtime"]["store"] = None
    built = {"factory": type(pipeline), "recipe": recipe}
    ds = ray.data.from_items([{"images": json.dumps([{"path": p} for p in chunk])} for chunk in chunks])
    ds = ds.map_batches(
        SegmentStep,
        fn_constructor_kwargs={**built, "keeper": keeper},
        batch_size=1,  # a chunk of paths in, its batching groups out
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=0.25 if gpus and pipeline.segments else 0,
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
