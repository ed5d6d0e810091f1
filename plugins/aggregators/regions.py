"""Region aggregators: one image's region scores -> one score per scorer.

``mean`` and ``area`` aggregate the local regions (objects and complement);
the whole image stands in only when an image has no local region (e.g. the
``whole`` segmenter). ``mix_grained`` adds the global score (the paper's method).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from iqa_core.api import Params, Region, RegionAggregator


def _split(scores: np.ndarray, regions: Sequence[Region]) -> tuple[float | None, np.ndarray, np.ndarray]:
    """(global score or None, local scores, local areas)."""
    if len(scores) != len(regions):
        raise ValueError(f"{len(scores)} scores for {len(regions)} regions")
    glob = [float(s) for s, r in zip(scores, regions) if r.kind == "global"]
    local = np.array([s for s, r in zip(scores, regions) if r.kind != "global"], dtype=np.float64)
    areas = np.array([r.area for r in regions if r.kind != "global"], dtype=np.float64)
    return (glob[0] if glob else None), local, areas


def _local(scores: np.ndarray, regions: Sequence[Region], weighting: Literal["mean", "area"]) -> float:
    glob, local, areas = _split(scores, regions)
    if local.size == 0:
        if glob is None:
            raise ValueError("no scored region to aggregate")
        return glob
    if weighting == "area":
        return float(np.average(local, weights=areas))
    return float(local.mean())


class MeanAggregator(RegionAggregator):
    """Plain mean of the local region scores (Table 3 row 4)."""

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        return _local(scores, regions, "mean")


class AreaAggregator(RegionAggregator):
    """Area-weighted mean of the local region scores (weights = mask areas)."""

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        return _local(scores, regions, "area")


class MixGrainedAggregator(RegionAggregator):
    """(s_global + lam * s_local) / (1 + lam): the paper's mix-grained score, kept in [1, K]."""

    needs_global = True

    class Params(Params):
        lam: float = Field(1.0, ge=0.0, description="weight of the local score")
        local: Literal["area", "mean"] = "area"

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        glob, local, _ = _split(scores, regions)
        if glob is None:
            raise ValueError("mix_grained needs the whole-image score: add 'whole' to regions.views")
        if local.size == 0:
            return glob
        s_local = _local(scores, regions, self.params.local)
        return (glob + self.params.lam * s_local) / (1.0 + self.params.lam)
