"""``iqa_core.run_pipeline``: the recipe's executor, chosen from ``runtime.executor`` and ``runtime.devices``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import ImageResult
from ..errors import IQAError
from ..images import expand_inputs
from .devices import run_per_device
from .placement import worker_recipe

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def run_pipeline(pipeline: Pipeline, inputs: Iterable[str | Path], progress: bool = False) -> list[ImageResult]:
    """Score ``inputs`` with the recipe's executor; results in input order, errors as rows.

    All executors give the same results and store rows. Inputs none of which exist are a
    usage error (a mistyped folder); otherwise each missing one becomes an error row.
    """
    runtime = pipeline.recipe.runtime
    inputs = list(inputs)
    paths = expand_inputs(inputs)
    if not any(Path(p).exists() for p in paths):
        raise IQAError(f"no images found in: {', '.join(map(str, inputs))}")
    if runtime.executor == "ray":
        from .ray import run_on_ray

        by_path = run_on_ray(pipeline, paths, progress)
        return [by_path[p] for p in paths]
    devices = runtime.devices or []
    if len(devices) > 1:
        by_path = run_per_device(pipeline, paths, devices)
        return [by_path[p] for p in paths]
    if not devices:
        return pipeline.score_many(paths, progress=progress)
    placed = type(pipeline).from_recipe(worker_recipe(pipeline, devices[0]), pipeline.store)
    results = placed.score_many(paths, progress=progress)
    pipeline.stats.update(placed.stats)
    return results
