"""What flows between the stages: one image (:class:`Item`), and the mark that closes a batching group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api import ImageResult, LevelProbs, Region
from ..images import LoadedImage
from ..store import ViewKey


@dataclass
class Item:
    """One input in flight, in input order: its pixels and regions, or its cached result, or its error.

    Per scorer label, ``levels`` gathers each view's level probabilities (stored or scored),
    ``failed`` the views that could not be cut or scored, with the reason, and ``stored``
    the ones read from the store (counted for prompt-following). ``missing`` counts the
    views still to come: the image is finished when it is 0.
    """

    index: int
    path: str
    loaded: LoadedImage | None = None
    content_hash: str | None = None
    regions: list[Region] = field(default_factory=list)
    cached: ImageResult | None = None
    error: str | None = None
    nbytes: int = 0  # bytes of the byte budget it holds until it is finished
    levels: dict[str, dict[ViewKey, LevelProbs]] = field(default_factory=dict)
    failed: dict[str, dict[ViewKey, str]] = field(default_factory=dict)
    stored: dict[str, list[LevelProbs]] = field(default_factory=dict)
    missing: int = 0

    @property
    def to_score(self) -> bool:
        return self.loaded is not None and self.cached is None and self.error is None


class Flush:
    """Sent by the segment stage when the images waiting to be batched reach ``runtime.chunk_images``
    or half the byte budget: every view still waiting goes into a batch now."""


def describe(stage: str, exc: BaseException, path: str | None = None) -> str:
    """An error row's message; like an ImageError's it names the file, so summaries can list it."""
    where = f"{path}: " if path else ""
    return f"{where}{stage} failed: {type(exc).__name__}: {exc}"


def from_store(path: str, digest: str, cached: dict[str, Any]) -> ImageResult:
    return ImageResult.from_dict({**cached, "path": path, "content_hash": digest})
