"""Ensemble over scorers: the mean of per-model scores (the paper's s_DoG)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import field_validator

from iqa_core.api import Params, ScorerAggregator


class EnsembleAggregator(ScorerAggregator):
    """Mean over scorers; scorers with different level ranges are put on a common scale first."""

    class Params(Params):
        scale: Literal["auto", "native", "unit"] = "auto"
        weights: list[float] | None = None

        @field_validator("weights")
        @classmethod
        def _usable(cls, weights: list[float] | None) -> list[float] | None:
            if weights is not None and (min(weights, default=0.0) < 0 or sum(weights) <= 0):
                raise ValueError("weights must be non-negative with a positive sum")
            return weights

    def check(self, ranges: Sequence[tuple[float, float]]) -> None:
        weights = self.params.weights
        if weights is not None and len(weights) != len(ranges):
            raise ValueError(f"{len(weights)} weights for {len(ranges)} scorers")
        if self.params.scale == "native" and len(set(ranges)) > 1:
            raise ValueError(
                f"scale 'native' needs scorers with one level range, got {sorted(set(ranges))}: "
                "use scale 'unit' (or 'auto') to mix them"
            )

    def combine(self, scores: np.ndarray, ranges: Sequence[tuple[float, float]]) -> float:
        """``auto``: the plain mean when all ranges agree (the paper), else ``unit``.

        ``unit`` maps each score to [0, 1] by its scorer's level range and the
        mean back onto the first scorer's range, so a 5-level and a 7-level
        model can be averaged without the 7-level one dominating.
        """
        scores = np.asarray(scores, dtype=np.float64)
        weights = self.params.weights
        if weights is not None and len(weights) != len(scores):
            raise ValueError(f"ensemble has {len(weights)} weights for {len(scores)} scorers")
        same = len(set(ranges)) == 1
        if self.params.scale == "native" and not same:
            raise ValueError(f"ensemble scale 'native' needs scorers with one level range, got {sorted(set(ranges))}")
        if self.params.scale == "native" or (self.params.scale == "auto" and same):
            return float(np.average(scores, weights=weights))
        lo = np.array([r[0] for r in ranges])
        hi = np.array([r[1] for r in ranges])
        unit = np.average((scores - lo) / np.where(hi > lo, hi - lo, 1.0), weights=weights)
        return float(lo[0] + unit * (hi[0] - lo[0]))
