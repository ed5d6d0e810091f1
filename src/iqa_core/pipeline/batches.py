"""Stage 4a, batching: which views go into which batch, and which images wait for them.

Each scorer keeps a pool of the views it still has to score, in arrival order. Once the
pool holds ``batch_size x runtime.batch_lookahead`` views, the oldest that many are sorted
by cost (the scorer's ``view_tokens``, else pixel area: similar sizes together, so less
padding) and packed into batches of at most ``batch_size`` views and ``batch_tokens``
tokens. A flush, or the end of the input, packs what is left. So a batch never waits for
a whole chunk of images, and which views share a batch depends only on the inputs, never
on timing: scores are reproducible.

A view that is already queued or being scored is not queued again: an identical file
later in the run waits for the same row (the :class:`Ledger`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..api import LevelProbs, Region, Scorer, View
from ..store import ViewKey
from .items import Item


@dataclass
class Pending:
    """A view to score: its key, the image and region it is cut from, and what it costs."""

    key: ViewKey
    item: Item
    region: Region
    cost: int  # tokens, or pixels when the scorer cannot say
    tokens: int | None
    cut: View | None = None  # already cut (the Ray executor cuts views in a step of their own)


@dataclass
class Pool:
    """One scorer's views waiting for a batch."""

    scorer: Scorer
    lookahead: int
    views: list[Pending] = field(default_factory=list)

    def add(self, pending: list[Pending]) -> list[list[Pending]]:
        """Queue views; the batches of every group that is now full."""
        self.views.extend(pending)
        group = max(1, self.scorer.batch_size) * self.lookahead
        out: list[list[Pending]] = []
        while len(self.views) >= group:
            out += self._pack(self.views[:group])
            del self.views[:group]
        return out

    def flush(self) -> list[list[Pending]]:
        """Batches of every view still waiting."""
        out = self._pack(self.views)
        self.views = []
        return out

    def _pack(self, views: list[Pending]) -> list[list[Pending]]:
        size, budget = max(1, self.scorer.batch_size), self.scorer.batch_tokens
        batches: list[list[Pending]] = []
        tokens = 0
        for view in sorted(views, key=lambda v: v.cost):  # stable: equal costs keep arrival order
            cost = view.tokens or 0
            full = not batches or len(batches[-1]) >= size or (budget is not None and tokens + cost > budget)
            if full:
                batches.append([])
                tokens = 0
            batches[-1].append(view)
            tokens += cost
        return batches


class Ledger:
    """Views in flight (queued or being scored) and the images waiting for each.

    The prepare thread claims views, the scoring thread delivers their rows; both under
    :attr:`lock`. An image's ``missing`` count goes up on a claim and down on delivery.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._waiting: dict[tuple[str, ViewKey], list[Item]] = {}

    def waiting(self, label: str, key: ViewKey) -> bool:
        return (label, key) in self._waiting

    def claim(self, label: str, key: ViewKey, item: Item) -> None:
        """``item`` waits for this view's row (call with :attr:`lock` held)."""
        self._waiting.setdefault((label, key), []).append(item)
        item.missing += 1

    def deliver(self, label: str, key: ViewKey, levels: LevelProbs | None, error: str | None = None) -> None:
        """A view's row (or why it failed) reaches every image waiting for it."""
        with self.lock:
            for item in self._waiting.pop((label, key), []):
                if levels is not None:
                    item.levels[label][key] = levels
                else:
                    item.failed[label][key] = error or "not scored"
                item.missing -= 1
