"""Prompt-following: how often a scorer's most likely next token was one of the level labels.

Level probabilities are read even when the model would rather write something else (a space,
a word, a thinking block), so a run can look fine while reading the wrong position. The share
of views whose unconstrained top token was a level (``LevelProbs.top_is_level``, stored per
view in the store's ``view_scores.top_is_level``) says whether the prompt is being followed.
Counts live in the pipeline's ``stats`` counter, so they add up across worker processes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .api import LevelProbs

WARN_BELOW = 0.5
_JUDGED, _ON_LEVEL = "following_views:", "following_on_level:"


def count(stats: Counter[str], scorer: str, levels: LevelProbs) -> None:
    """Add one batch of ``scorer``'s views (scored or from the store) to the counts."""
    if levels.top_is_level is not None:
        stats[_JUDGED + scorer] += len(levels.top_is_level)
        stats[_ON_LEVEL + scorer] += int(np.count_nonzero(levels.top_is_level))


def fractions(stats: Counter[str]) -> dict[str, float]:
    """Per scorer label: the fraction of its views whose top token was a level label."""
    return {
        key[len(_JUDGED) :]: stats[_ON_LEVEL + key[len(_JUDGED) :]] / n
        for key, n in stats.items()
        if key.startswith(_JUDGED) and n
    }


def warnings(following: dict[str, float]) -> list[str]:
    """One line per scorer that followed the prompt for fewer than half of its views."""
    return [
        f"warning: scorer {scorer!r}: the most likely next token was a level label for only "
        f"{share:.0%} of views; check that the standard's labels are what this model answers "
        "and where it writes them (chat template, template_options, answer_stem, system_role)"
        for scorer, share in following.items()
        if share < WARN_BELOW
    ]
