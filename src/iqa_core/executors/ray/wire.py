"""What travels between the Ray steps, and the actor base that keeps a user error as data.

Every step after the first emits rows of one schema (:data:`COLUMNS`): an ``image`` row per
input (its regions, view keys and masks, or its error) and a ``view`` row per view still to
score (its key and pixels; after scoring, its level probabilities or why it failed). ``info``
is JSON; ``stats`` holds counts on one row per batch; ``fatal`` a user error, pickled.
"""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ...api import LevelProbs, Region
from ...errors import IQAError
from ...store import Store

if TYPE_CHECKING:
    from ...pipeline import Pipeline

Batch = dict[str, Any]  # column -> values, as Ray Data hands a batch over (numpy arrays) and takes it back (lists)
COLUMNS = ("kind", "path", "info", "pixels", "stats", "fatal")


def pickled(exc: IQAError) -> str:
    try:
        return pickle.dumps(exc).hex()
    except Exception:  # an attribute that does not pickle: the message is what matters
        return pickle.dumps(IQAError(str(exc))).hex()


def raise_fatal(cell: str) -> None:
    raise pickle.loads(bytes.fromhex(cell))


def fatal_of(batch: Batch) -> str:
    return next((str(c) for c in batch.get("fatal", []) if c), "")


def stats_of(batch: Batch) -> Counter[str]:
    """The counts earlier steps attached to this batch's rows."""
    total: Counter[str] = Counter()
    for cell in batch.get("stats", []):
        if cell:
            total.update(json.loads(str(cell)))
    return total


def columns(out: list[dict[str, Any]], stats: Counter[str]) -> Batch:
    """Rows -> a batch of :data:`COLUMNS` but ``fatal``, the counts on the first row."""
    batch: Batch = {name: [row.get(name, b"" if name == "pixels" else "") for row in out] for name in COLUMNS[:-1]}
    if out:
        batch["stats"] = [json.dumps(dict(stats))] + [""] * (len(out) - 1)
    return batch


def levels_to(levels: LevelProbs) -> dict[str, Any]:
    top = None if levels.top_is_level is None else [bool(t) for t in levels.top_is_level]
    return {"probs": levels.probs.tolist(), "values": list(levels.values), "top": top}


def levels_from(data: dict[str, Any]) -> LevelProbs:
    top = None if data["top"] is None else np.array(data["top"], dtype=bool)
    return LevelProbs(np.array(data["probs"], dtype=np.float64), tuple(data["values"]), top)


def region_to(region: Region) -> dict[str, Any]:
    return {"kind": region.kind, "bbox": list(region.bbox), "area": region.area, "rle": region.rle}


def region_from(data: dict[str, Any]) -> Region:
    return Region(data["kind"], tuple(data["bbox"]), data["area"], data["rle"])  # type: ignore[arg-type]


class Step(ABC):
    """A Ray actor holding a pipeline whose in-memory store holds one batch's rows at a time.

    A user error (e.g. weights that cannot be loaded) travels on as data in the ``fatal``
    column, and later steps pass it through: Ray Data would wrap a raised one into a long
    traceback. The driver raises it as itself.
    """

    def __init__(self, factory: type[Pipeline], recipe: dict[str, Any]) -> None:
        self.pipeline = factory.from_recipe(recipe, Store(None))

    def __call__(self, batch: Batch) -> Batch:
        fatal = fatal_of(batch)
        if not fatal:
            self.pipeline.store.close()
            self.pipeline.store = Store(None)  # the rows of earlier batches went on already
            self.pipeline.stats.clear()
            try:
                out = self.run(batch)
                return {**out, "fatal": [""] * len(out["path"])}
            except IQAError as exc:
                fatal = pickled(exc)
        out = self.passed(batch)
        return {**out, "fatal": [fatal] * len(out["path"])}

    @abstractmethod
    def run(self, batch: Batch) -> Batch:
        """This step's work on one batch (every column but ``fatal``)."""

    @abstractmethod
    def passed(self, batch: Batch) -> Batch:
        """This step's output with nothing done (after a user error), every column but ``fatal``."""
