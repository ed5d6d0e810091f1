"""The store's reader on a Ray run: an actor on the driver's node that answers the workers' look-ups.

Workers hash the images they read, so they are the ones that ask what the store has: a
group's stored result per content hash, or else the rows (masks, view scores) a step
would otherwise recompute. The actor reads the run's store file (SQLite in WAL mode, so it
sees what the driver commits while the run goes on), on the node that holds it; a store in
memory is copied into it at the start. It never writes: the driver merges the rows each
scored group sends back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...store import Store


class StoreKeeper:
    """Look-ups by content hash against the run's store (read as it is now)."""

    def __init__(self, path: str | None, rows: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
        self.store = Store(path)
        if rows:
            self.store.import_rows(rows)

    def lookup(self, recipe: str, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per hash: ``{"result": ...}`` for a stored result of ``recipe``, else ``{"seed": rows}``."""
        out: dict[str, dict[str, Any]] = {}
        for digest in dict.fromkeys(digests):
            cached = self.store.get_result(recipe, digest)
            out[digest] = {"result": cached} if cached is not None else {"seed": self.store.export_rows([digest])}
        return out

    def close(self) -> int:
        """Close the store; the damaged rows this reader found (treated as missing, so recomputed
        and overwritten)."""
        self.store.close()
        return self.store.repaired


def start_keeper(ray: Any, store: Store) -> Any:
    """The keeper actor for ``store``, pinned to this (the driver's) node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    path = None if store.path == ":memory:" else store.path
    rows = store.export_rows() if path is None else None
    actor = ray.remote(num_cpus=0, scheduling_strategy=here)(StoreKeeper)
    return actor.remote(path, rows)
