"""What travels between the Ray steps: one row per batching group of images.

The driver sends a chunk of ``runtime.chunk_images`` paths a row; the first step splits it
into what the local run batches together between two flushes (``segment.closes_group``),
so the scoring step forms the local run's batches and its numbers are the local run's,
whatever Ray's block boundaries and timing. A row holds the group's images (JSON), the
views still to score (JSON) and their pixels (one bytes cell; each view says where its own
are), the counts the steps made, and a user error, pickled, once one happened. The last
step sends back only the images' results and the store rows it made (JSON).
"""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...api import LevelProbs, Region
from ...errors import IQAError
from ...store import Store

if TYPE_CHECKING:
    from ...pipeline import Pipeline

Batch = dict[str, Any]  # column -> values, as Ray Data hands a batch over (arrays) and takes it back (lists)


@dataclass
class Group:
    """One row: a group of images in input order, and what the steps so far made of it."""

    images: list[dict[str, Any]]
    views: list[dict[str, Any]] = field(default_factory=list)
    pixels: bytes = b""
    stats: Counter[str] = field(default_factory=Counter)
    fatal: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)  # ImageResult.to_dict, in input order
    rows: dict[str, list[Any]] = field(default_factory=dict)  # new store rows, by table

    @classmethod
    def read(cls, batch: Batch, i: int) -> Group:
        def column(name: str, empty: Any) -> Any:
            return json.loads(str(batch[name][i])) if name in batch else empty

        pixels = bytes(batch["pixels"][i]) if "pixels" in batch else b""
        fatal = str(batch["fatal"][i]) if "fatal" in batch else ""
        return cls(
            column("images", []),
            column("views", []),
            pixels,
            Counter(column("stats", {})),
            fatal,
            column("results", []),
            column("rows", {}),
        )

    def row(self) -> dict[str, Any]:
        return {
            "images": json.dumps(self.images),
            "views": json.dumps(self.views),
            "pixels": self.pixels,
            "stats": json.dumps(dict(self.stats)),
            "fatal": self.fatal,
            "results": json.dumps(self.results),
            "rows": json.dumps(self.rows),
        }

    def raise_fatal(self) -> None:
        if self.fatal:
            raise pickle.loads(bytes.fromhex(self.fatal))


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
    """A Ray step holding a pipeline whose in-memory store holds one group's rows at a time.

    A user error (e.g. weights that cannot be loaded) travels on as data in the ``fatal``
    column, and later steps pass it through: Ray Data would wrap a raised one into a long
    traceback. The driver raises it as itself.
    """

    def __init__(self, factory: type[Pipeline], recipe: dict[str, Any]) -> None:
        self.pipeline = factory.from_recipe(recipe, Store(None))

    def __call__(self, batch: Batch) -> Batch:
        out: dict[str, list[Any]] = {}
        for i in range(len(batch["images"])):
            group = Group.read(batch, i)
            made = [group]
            if not group.fatal:
                self.pipeline.store.close()
                self.pipeline.store = Store(None)  # the rows of earlier groups went on already
                self.pipeline.stats.clear()
                try:
                    made = self.run(group)
                    made[0].stats.update(self.pipeline.stats)
                except IQAError as exc:
                    group.fatal = _pickled(exc)
                    made = [group]
            for one in made:
                for name, value in one.row().items():
                    out.setdefault(name, []).append(value)
        return out

    @abstractmethod
    def run(self, group: Group) -> list[Group]:
        """This step's work on one row: the rows it passes on (the same group, or the groups
        the first step splits a chunk into)."""


def _pickled(exc: IQAError) -> str:
    try:
        return pickle.dumps(exc).hex()
    except Exception:  # an attribute that does not pickle: the message is what matters
        return pickle.dumps(IQAError(str(exc))).hex()
