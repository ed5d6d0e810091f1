"""``executor: ray``: the pipeline's stages as Ray Data steps; the driver never touches pixels.

    read + hash + look up + segment (actors holding the segmenter) -> regions + views (CPU
    tasks) -> prepare + score + finish (actors holding the scorers) -> the driver

The driver sends chunks of ``runtime.chunk_images`` paths, nothing read, put in Ray's object
store a block at a time with the manifest columns they carry (fetched back as results come).
Workers read each file where its bytes are needed and hash it there; the first step asks the
store's keeper (an actor on the driver's node, ``keeper``) what is stored for those hashes, and
splits the chunk into the local run's batching groups (see ``wire``). On a GPU cluster each GPU
hosts a segmenter actor (0.25) and a scorer actor (0.75), so segmentation of the next groups
overlaps scoring; regions and views are cut on any CPU. The scoring step finishes each image
and sends back its result and the store rows the group made; the driver takes the groups in
input order, writes their rows to the store and yields their results, one group at a time, so a
Ray run leaves the results and store rows a local run would with the driver's memory flat in
the number of images. Inputs must be readable on every node (a shared file system, or URIs);
the store's file is read on the driver's node only.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from ...api import ImageResult
from ...errors import IQAError
from ...images import Input
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


def iter_on_ray(
    pipeline: Pipeline, inputs: Iterable[Input], progress: bool = False
) -> Iterator[tuple[ImageResult, dict[str, Any] | None]]:
    """Score ``inputs`` (path, manifest columns) on Ray (``runtime.ray_address``, or a local
    instance); each result with its columns, in input order, as soon as its group and those
    before it are scored."""
    try:
        import ray
    except ImportError:
        raise IQAError("executor 'ray' needs Ray: pip install 'iqa[ray]'") from None
    if pipeline.views.prescale:  # its views step holds no scorer to tell the input sizes
        raise IQAError("regions.prescale is not supported with executor: ray yet; use executor: local or devices")
    runtime = pipeline.recipe.runtime
    names, columns = put_blocks(ray, blocks(inputs, runtime.chunk_images), runtime.ray_address)
    if not names:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.execution_options.preserve_order = True  # groups come back in input order
    keeper = start_keeper(ray, pipeline.store)
    hook, recipe = manager().hook, pipeline.recipe.model_dump(mode="json")
    try:
        steps = dataset(ray, pipeline, ray.data.from_arrow_refs(names), keeper)
        del names
        carried = fetched(ray, columns)
        for row in steps.iter_rows():
            group = Group.read({name: [value] for name, value in row.items()}, 0)
            group.raise_fatal()
            pipeline.stats.update(group.stats)
            pipeline.store.import_rows(group.rows)
            for data in group.results:
                result = ImageResult.from_dict(data)
                hook.iqa_image_scored(result=result, recipe=recipe)
                pipeline.stats["images"] += 1
                pipeline.stats["failed"] += result.error is not None
                yield result, next(carried)
        pipeline.stats["store_rows_repaired"] += ray.get(keeper.close.remote())
        pipeline.store.checkpoint()  # the keeper's look-ups kept the log from resetting
    finally:
        ray.kill(keeper)


def put_blocks(ray: Any, windows: Iterator[tuple[Any, list]], address: str | None) -> tuple[list, deque]:
    """Each block's names and columns put in Ray's object store (spilled to disk under pressure),
    so the driver's heap holds one block at a time; Ray is started only if there is a block."""
    names: list[Any] = []
    columns: deque[Any] = deque()
    for table, carried in windows:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        names.append(ray.put(table))
        columns.append(ray.put(carried))
    return names, columns


def fetched(ray: Any, columns: deque) -> Iterator[dict[str, Any] | None]:
    """The manifest columns of each input in order, a block fetched from the object store at a time."""
    while columns:
        yield from ray.get(columns.popleft())


BLOCK_CHUNKS = 64  # chunks of names per block put in the object store


def blocks(inputs: Iterable[Input], size: int) -> Iterator[tuple[Any, list[dict[str, Any] | None]]]:
    """``inputs`` in blocks of ``BLOCK_CHUNKS`` chunks of ``size`` names each (a batching group
    never spans two chunks: ``segment.closes_group``): a table with one chunk's names per row,
    and the block's manifest columns, one per input."""
    import pyarrow as pa

    for window in batched(batched(inputs, size), BLOCK_CHUNKS):
        chunks = [json.dumps([{"path": path} for path, _ in chunk]) for chunk in window]
        yield pa.table({"images": chunks}), [row for chunk in window for _, row in chunk]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter); ``itertools.batched`` from Python 3.12."""
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


def dataset(ray: Any, pipeline: Pipeline, chunks: Any, keeper: Any) -> Any:
    """The Ray Data steps over ``chunks`` (a Dataset of chunks of names: ``blocks``), not yet run."""
    runtime = pipeline.recipe.runtime
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = runtime.ray_actors or max(gpus, 1)
    recipe = worker_recipe(pipeline, None)
    recipe["runtime"]["store"] = None
    built = {"factory": type(pipeline), "recipe": recipe}
    ds = chunks.map_batches(
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
