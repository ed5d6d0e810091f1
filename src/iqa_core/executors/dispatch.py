"""``iqa_core.run_pipeline``: the recipe's executor, chosen from ``runtime.executor`` and ``runtime.devices``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import ImageResult
from ..errors import IQAError
from ..images import expand_inputs
from ..sources import is_uri
from .devices import run_per_device
from .placement import worker_recipe

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def run_pipeline(pipeline: Pipeline, inputs: Iterable[str | Path], progress: bool = False) -> list[ImageResult]:
    """Score ``inputs`` with the recipe's executor; results in input order, errors as rows.

    All executors give the same results and store rows. Inputs none of which exist are a
    usage error (a mistyped folder); otherwise each missing one becomes an error row.
    """
    return list(iter_pipeline(pipeline, inputs, progress))


def iter_pipeline(pipeline: Pipeline, inputs: Iterable[str | Path], progress: bool = False) -> Iterator[ImageResult]:
    """Like :func:`run_pipeline`, each result as soon as it and those before it are done
    (local and Ray; ``runtime.devices`` with several devices gives them all at the end)."""
    runtime = pipeline.recipe.runtime
    inputs = list(inputs)
    paths = expand_inputs(inputs)
    if not any(is_uri(p) or Path(p).exists() for p in paths):
        raise IQAError(f"no images found in: {', '.join(map(str, inputs))}")
    if runtime.executor == "ray":
        from .ray import iter_on_ray

        yield from iter_on_ray(pipeline, paths, progress)
        return
    devices = runtime.devices or []
    if len(devices) > 1:
        by_path = run_per_device(pipeline, paths, devices)
        yield from (by_path[p] for p in paths)
        return
    if not devices:
        yield from pipeline.iter_many(paths, progress=progress)
        return
    placed = type(pipeline).from_recipe(worker_recipe(pipeline, devices[0]), pipeline.store)
    try:
        yield from placed.iter_many(paths, progress=progress)
    finally:
        pipeline.stats.update(placed.stats)
