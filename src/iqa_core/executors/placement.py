"""Placing a recipe on a worker: its models on one device, its CPU threads a share of the cores."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline import Pipeline

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_recipe(pipeline: Pipeline, device: str | None) -> dict[str, Any]:
    """The recipe as a plain dict for a worker, its models placed on ``device``."""
    data = pipeline.recipe.model_dump(mode="json")
    data["runtime"].update(executor="local", devices=None)
    if device is not None:
        specs = [data["segmenter"], *data["scorers"]]
        comps = [pipeline.segmenter, *(scorer for _, scorer, _ in pipeline.scorers)]
        for spec, comp in zip(specs, comps):
            if "device" in type(comp.params).model_fields:
                spec["params"]["device"] = device
    return data


def thread_share(workers: int) -> dict[str, str]:
    """Environment for one of ``workers`` processes on this machine: an equal share of the cores.

    Each process's OpenMP pool would otherwise take every core, and ``devices: [cpu, cpu]``
    would run several times slower than one process. A value the user set is kept.
    """
    share = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return {name: os.environ.get(name, share) for name in THREAD_VARIABLES}
