"""An example scorer plugin: sharpness from the variance of the Laplacian.

It shows the whole contract: a ``Params`` model, ``load`` (nothing to load here),
and ``score`` turning a batch of views into (N, K) level probabilities for
whatever standard the recipe uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field
from scipy import ndimage

from iqa_core.api import LevelProbs, Params, Scorer, Standard, View


class SharpnessScorer(Scorer):
    """Laplacian-variance sharpness, spread over the standard's levels (no model needed)."""

    class Params(Params):
        blurry: float = Field(1.0, gt=0, description="Laplacian variance mapped to the lowest level")
        sharp: float = Field(1000.0, gt=0, description="Laplacian variance mapped to the highest level")
        temperature: float = Field(0.5, gt=0, description="softness of the level assignment")
        batch_size: int = 64

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        lo, hi = np.log(self.params.blurry), np.log(self.params.sharp)
        levels = np.arange(standard.k)
        rows = []
        for view in views:
            gray = np.asarray(view.image.convert("L"), dtype=np.float64)
            variance = ndimage.laplace(gray).var()
            position = np.clip((np.log(variance + 1e-12) - lo) / (hi - lo), 0, 1) * (standard.k - 1)
            logits = -((levels - position) ** 2) / self.params.temperature
            probs = np.exp(logits - logits.max())
            rows.append(probs / probs.sum())
        return LevelProbs(np.array(rows), standard.values)
