"""What flows between the stages: one image (:class:`Item`) and a batching window of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api import ImageResult, LevelProbs, Region
from ..images import LoadedImage
from ..store import ViewKey


@dataclass
class Item:
    """One input in flight, in input order: its pixels and regions, or its cached result, or its error."""

    index: int
    path: str
    loaded: LoadedImage | None = None
    content_hash: str | None = None
    regions: list[Region] = field(default_factory=list)
    cached: ImageResult | None = None
    error: str | None = None
    nbytes: int = 0  # bytes of the byte budget it holds until it is finished

    @property
    def to_score(self) -> bool:
        return self.loaded is not None and self.cached is None and self.error is None


@dataclass
class Window:
    """Images whose views are batched together (``runtime.chunk_images``, or fewer under the byte budget).

    ``levels[label]`` collects every view's level probabilities for a scorer (stored or
    scored); ``failed[label]`` the views that could not be cut or scored, with the reason.
    """

    items: list[Item]
    levels: dict[str, dict[ViewKey, LevelProbs]] = field(default_factory=dict)
    stored: dict[str, list[LevelProbs]] = field(default_factory=dict)  # of levels, those read from the store
    failed: dict[str, dict[ViewKey, str]] = field(default_factory=dict)

    @property
    def work(self) -> list[Item]:
        return [item for item in self.items if item.to_score]

    @property
    def nbytes(self) -> int:
        return sum(item.nbytes for item in self.items)


def describe(stage: str, exc: BaseException, path: str | None = None) -> str:
    """An error row's message; like an ImageError's it names the file, so summaries can list it."""
    where = f"{path}: " if path else ""
    return f"{where}{stage} failed: {type(exc).__name__}: {exc}"


def from_store(path: str, digest: str, cached: dict[str, Any]) -> ImageResult:
    return ImageResult.from_dict({**cached, "path": path, "content_hash": digest})
