"""Region aggregators: one image's region scores -> one score per scorer.

``mean`` and ``area`` aggregate the local regions (objects and complement);
the whole image stands in only when an image has no local region (e.g. the
``whole`` segmenter). ``mix_grained`` adds the global score (the paper's method).

Area weighting has two readings, chosen by ``normalize``:

* ``sum`` (default): divide by the sum of the kept regions' areas, a weighted *average*
  that stays in [1, K] (the paper's words: "area-weighted average").
* ``image``: divide by the image area, i.e. the paper's formula ⟨s, a⟩ as printed, with
  ``a`` the areas as fractions of the image.

They agree when the kept regions tile the image (complement on, masks disjoint). They
differ once masks overlap (sum > 1: ``image`` can exceed K) or the complement is dropped
or too small (sum < 1: ``image`` pulls the local score towards 0), as in Table 5's
"No Complement" row.
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


Normalize = Literal["sum", "image"]


def _local(
    scores: np.ndarray, regions: Sequence[Region], weighting: Literal["mean", "area"], normalize: Normalize = "sum"
) -> float:
    glob, local, areas = _split(scores, regions)
    if local.size == 0:
        if glob is None:
            raise ValueError("no scored region to aggregate")
        return glob
    if weighting == "mean":
        return float(local.mean())
    if normalize == "image":
        return float(np.dot(local, areas))
    return float(np.average(local, weights=areas))


class _AreaParams(Params):
    normalize: Normalize = Field(
        "sum", description="sum: divide by the regions' total area (a weighted mean); image: ⟨s, a⟩ as printed"
    )


class MeanAggregator(RegionAggregator):
    """Plain mean of the local region scores (Table 3 row 4)."""

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        return _local(scores, regions, "mean")


class AreaAggregator(RegionAggregator):
    """Area-weighted mean of the local region scores (weights = mask areas)."""

    Params = _AreaParams

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        return _local(scores, regions, "area", self.params.normalize)


class MixGrainedAggregator(RegionAggregator):
    """(s_global + lam * s_local) / (1 + lam): the paper's mix-grained score, kept in [1, K]."""

    needs_global = True

    class Params(_AreaParams):
        lam: float = Field(1.0, ge=0.0, description="weight of the local score")
        local: Literal["area", "mean"] = Field("area", description="how the local regions are combined")

    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        glob, local, _ = _split(scores, regions)
        if glob is None:
            raise ValueError("mix_grained needs the whole-image score: add 'whole' to regions.views")
        if local.size == 0:
            return glob
        s_local = _local(scores, regions, self.params.local, self.params.normalize)
        return (glob + self.params.lam * s_local) / (1.0 + self.params.lam)
