"""Level probabilities from the answer position's logits, or from a generated number.

``answer: generate`` is Table 3 row 1 (no standard): the model writes a number, greedily, and
the number becomes a two-level distribution whose expectation is that number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from iqa_core.api import LevelProbs

if TYPE_CHECKING:
    import torch


def level_probs(logits: torch.Tensor, label_ids: Sequence[int], values: tuple[float, ...]) -> LevelProbs:
    """(N, V) last-position logits -> softmax over the K label tokens, and whether the
    unconstrained argmax was a label token (a diagnostic of prompt-following)."""
    import torch

    ids = torch.tensor(list(label_ids), device=logits.device)
    probs = torch.softmax(logits[:, ids].double(), dim=-1)  # float64: rows sum to 1 exactly enough
    top = torch.isin(logits.argmax(dim=-1), ids)
    return LevelProbs(probs.cpu().numpy(), values, top.cpu().numpy().astype(bool))


class UnparsedAnswer(ValueError):
    """A generated answer holding no number. A ValueError, not an IQAError: the engine retries
    the batch view by view and turns the failing view into its image's error row."""


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_answer(text: str) -> float:
    """The first number in a generated answer ("4.3", "Score: 5." -> 4.3, 5.0)."""
    match = NUMBER.search(text)
    if match is None:
        raise UnparsedAnswer(f"the model's answer {text!r} holds no number")
    return float(match.group())


def interpolated_levels(score: float, values: Sequence[float]) -> np.ndarray:
    """A score as probabilities on the two levels around it, so nothing is lost: the expected
    value is the score (clamped to the level range) and the argmax its nearest level.

    ``values`` ascend. E.g. 5.3 on 1..7 -> p(5) = 0.7, p(6) = 0.3.
    """
    levels = np.asarray(values, dtype=np.float64)
    x = float(np.clip(score, levels[0], levels[-1]))
    probs = np.zeros(len(levels))
    upper = int(np.searchsorted(levels, x, side="left"))
    if levels[upper] == x:
        probs[upper] = 1.0
        return probs
    lower = upper - 1
    weight = (x - levels[lower]) / (levels[upper] - levels[lower])
    probs[lower], probs[upper] = 1.0 - weight, weight
    return probs
