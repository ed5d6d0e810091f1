"""``iqa_core.run_pipeline``: the recipe's executor, chosen from ``runtime.executor`` and ``runtime.devices``."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import ImageResult
from ..images import iter_inputs
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
    for result, _ in iter_rows(pipeline, inputs, progress):
        yield result


def iter_rows(
    pipeline: Pipeline, inputs: Iterable[str | Path], progress: bool = False
) -> Iterator[tuple[ImageResult, dict[str, Any] | None]]:
    """Each result of :func:`iter_pipeline` with its manifest row's other columns (None for
    other inputs). A manifest is read as the executor takes its inputs, so only the columns
    of the inputs in flight are held (on Ray, in its object store)."""
    found = iter_inputs(inputs, some_must_exist=True)
    if pipeline.recipe.runtime.executor == "ray":
        from .ray import iter_on_ray

        yield from iter_on_ray(pipeline, found, progress)
        return
    columns: deque[dict[str, Any] | None] = deque()

    def paths() -> Iterator[str]:
        for path, row in found:
            columns.append(row)
            yield path

    for result in _on_this_machine(pipeline, paths(), progress):
        yield result, columns.popleft()


def _on_this_machine(pipeline: Pipeline, paths: Iterator[str], progress: bool) -> Iterator[ImageResult]:
    """Results of ``paths``, one each in their order, on this machine's devices."""
    devices = pipeline.recipe.runtime.devices or []
    if len(devices) > 1:
        listed = list(paths)
        by_path = run_per_device(pipeline, listed, devices)
        yield from (by_path[p] for p in listed)
        return
    if not devices:
        yield from pipeline.iter_paths(paths, progress=progress)
        return
    placed = type(pipeline).from_recipe(worker_recipe(pipeline, devices[0]), pipeline.store)
    try:
        yield from placed.iter_paths(paths, progress=progress)
    finally:
        pipeline.stats.update(placed.stats)
