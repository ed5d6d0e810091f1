"""Level probabilities -> scores: ``argmax`` (the paper: one level) or ``expected``."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .api import LevelProbs

DecodeMethod = Literal["argmax", "expected"]


def decode(levels: LevelProbs, method: DecodeMethod) -> np.ndarray:
    """One score per row. ``expected`` is the probability-weighted level value (as Q-Align)."""
    values = np.asarray(levels.values, dtype=np.float64)
    if method == "argmax":
        return values[np.argmax(levels.probs, axis=1)]
    if method == "expected":
        return levels.probs @ values
    raise ValueError(f"unknown decode method {method!r}; use 'argmax' or 'expected'")
