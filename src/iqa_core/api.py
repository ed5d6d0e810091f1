"""Component contracts and the data types that flow between them.

Every plugin subclasses one of the bases here. Nothing in this module imports
torch or a model library: plugins do their heavy imports inside ``load()``.

Data path: image -> Segmenter masks -> Regions (Algorithm 1, core) -> Views ->
Scorer -> LevelProbs (N, K) -> decode -> RegionAggregator -> per-scorer score
-> ScorerAggregator -> image score.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

RegionKind = Literal["global", "object", "complement"]
ViewMode = Literal["whole", "bbox", "mask"]


class Params(BaseModel):
    """Base for every plugin's parameters: unknown fields are errors, and so are NaN and infinities
    (a weight or level value of ``.inf`` would only surface as a nan score after all the model work)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component(ABC):
    """A configurable plugin. ``Params`` is validated from the recipe's ``params:``.

    ``uncached_params`` names parameters that do not change results (batch
    size, device placement); they are left out of :meth:`cache_key`, so
    changing them reuses stored outputs. ``keyed_when_set`` names parameters
    that enter the key only when they differ from their default: a parameter
    added later, whose default keeps the old behaviour, leaves the stored outputs
    of existing recipes valid. Bump ``version`` when a change to the code
    changes outputs.
    """

    Params: ClassVar[type[Params]] = Params
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    uncached_params: ClassVar[frozenset[str]] = frozenset()
    keyed_when_set: ClassVar[frozenset[str]] = frozenset()
    # Modules ``load()`` imports -> the pip argument that installs each (e.g. {"torch": "iqa[models]"}):
    # recipe validation reports a missing one in one line instead of a failure per image.
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, params: Params | dict[str, Any] | None = None) -> None:
        if params is None:
            params = self.Params()
        elif isinstance(params, dict):
            params = self.Params.model_validate(params)
        self.params = params

    @classmethod
    def describe(cls) -> str:
        """One line for ``iqa plugins``: the first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def cache_key(self) -> str:
        """Identity of this component's outputs: class, version and result-relevant params.

        Computed once: params are frozen, and the engine asks for it per view.
        """
        if "_cache_key" not in self.__dict__:
            payload = self.params.model_dump(mode="json", exclude=set(self.uncached_params))
            fields = type(self.params).model_fields
            for name in self.keyed_when_set & payload.keys():
                if getattr(self.params, name) == fields[name].get_default(call_default_factory=True):
                    del payload[name]
            blob = json.dumps(
                [f"{type(self).__module__}.{type(self).__qualname__}", self.version, payload],
                sort_keys=True,
            )
            self.__dict__["_cache_key"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self.__dict__["_cache_key"]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Region:
    """A scored part of an image.

    ``bbox`` is (x0, y0, x1, y1) in original pixel coordinates, x1/y1
    exclusive. ``area`` is the fraction of the image the region covers (for
    the global region 1.0). ``rle`` is a COCO run-length encoding of the
    mask at the segmenter's working resolution (``rle["size"]`` = [h, w]);
    ``None`` for the global region.
    """

    kind: RegionKind
    bbox: tuple[int, int, int, int]
    area: float
    rle: dict[str, Any] | None = None

    def view_key(self, mode: ViewMode) -> str:
        """Content identity of this region's view: equal regions share stored scores."""
        if self.kind == "global" or mode == "whole":
            return "whole"
        if mode == "bbox":
            return "bbox:" + ",".join(map(str, self.bbox))
        assert self.rle is not None
        digest = hashlib.sha256(json.dumps(self.rle, sort_keys=True).encode()).hexdigest()[:16]
        return f"mask:{','.join(map(str, self.bbox))}:{digest}"


@dataclass
class View:
    """What a scorer sees: an RGB PIL image cut from one region of one image."""

    image: Any  # PIL.Image.Image (kept untyped so this module stays import-light)
    key: str
    source: str = ""


@dataclass
class LevelProbs:
    """Scorer output for a batch of N views over K levels.

    ``probs`` is (N, K), rows sum to 1, columns in the order of ``values``
    (ascending level value). ``top_is_level`` is a diagnostic: whether the
    model's unconstrained most likely next token was one of the level tokens
    (None where the notion does not apply, e.g. CLIP).
    """

    probs: np.ndarray
    values: tuple[float, ...]
    top_is_level: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float64)
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.values):
            raise ValueError(f"level probabilities must be (N, {len(self.values)}), got {self.probs.shape}")

    def __len__(self) -> int:
        return self.probs.shape[0]

    def row(self, i: int) -> LevelProbs:
        top = None if self.top_is_level is None else self.top_is_level[i : i + 1]
        return LevelProbs(self.probs[i : i + 1], self.values, top)


@dataclass
class RegionScore:
    """One region of one image with its score from every scorer."""

    index: int
    region: Region
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class ImageResult:
    """Final output for one input image; ``error`` set means it could not be scored."""

    path: str
    score: float | None = None
    scorer_scores: dict[str, float] = field(default_factory=dict)
    regions: list[RegionScore] = field(default_factory=list)
    content_hash: str | None = None
    size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None

    @property
    def n_regions(self) -> int:
        """Number of local (object + complement) regions, as the paper counts masks."""
        return sum(1 for r in self.regions if r.region.kind != "global")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the store's and the Ray executor's wire format)."""
        return {
            "path": self.path,
            "score": self.score,
            "scorer_scores": self.scorer_scores,
            "regions": [region_dict(r) for r in self.regions],
            "content_hash": self.content_hash,
            "size": list(self.size) if self.size else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageResult:
        regions = [
            RegionScore(i, Region(d["kind"], tuple(d["bbox"]), d["area"], d.get("rle")), d["scores"])
            for i, d in enumerate(data.get("regions", []))
        ]
        size = tuple(data["size"]) if data.get("size") else None
        return cls(
            data["path"],
            data.get("score"),
            data.get("scorer_scores", {}),
            regions,
            data.get("content_hash"),
            size,
            data.get("error"),  # type: ignore[arg-type]
        )


def region_dict(row: RegionScore) -> dict[str, Any]:
    r = row.region
    return {"kind": r.kind, "bbox": list(r.bbox), "area": r.area, "rle": r.rle, "scores": row.scores}


# ------------------------------------------------------------------- components


class Segmenter(Component):
    """Image -> candidate object masks. The core applies Algorithm 1 to them.

    ``local_regions = False`` marks a segmenter that never yields local regions
    (``whole``): Algorithm 1 is skipped, rather than turning "no masks" into a
    whole-image complement as it does for a segmenter that found nothing.
    """

    local_regions: ClassVar[bool] = True

    def load(self) -> None:
        """Load weights. Called once, before the first ``segment``."""

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) ``segment`` works at for an image of ``size``.

        The core resizes to it (PIL bilinear, antialiased) before handing the pixels over,
        so a large image is never copied at full size for a segmenter that shrinks it anyway.
        Default: the image's own size.
        """
        return size

    @abstractmethod
    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        """Masks for an RGB uint8 (H, W, 3) image.

        Each mask is a boolean (h, w) array. Masks may be at a lower working
        resolution than the image (all of one image at the same size, same
        aspect ratio); the core maps them back to original coordinates.
        """


class Standard(Component):
    """K quality levels and the prompt that presents them.

    ``labels`` are the answer strings (one token each for an MLLM), aligned
    with ``values`` in ascending order; ``descriptions`` are what the prompt
    says about each level (for CLIP-style scorers that embed level texts).
    """

    @property
    @abstractmethod
    def values(self) -> tuple[float, ...]: ...

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]: ...

    @property
    @abstractmethod
    def descriptions(self) -> tuple[str, ...]: ...

    @property
    @abstractmethod
    def system(self) -> str: ...

    @property
    @abstractmethod
    def user(self) -> str: ...

    @property
    def k(self) -> int:
        return len(self.values)

    def prompt_key(self) -> str:
        """Identity of what a scorer is shown: texts, labels and values (computed once)."""
        if "_prompt_key" not in self.__dict__:
            blob = json.dumps([self.system, self.user, self.labels, self.values, self.descriptions])
            self.__dict__["_prompt_key"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self.__dict__["_prompt_key"]


class Scorer(Component):
    """A batch of views + a standard -> (N, K) level probabilities.

    A scorer sees nothing but views and the standard: the engine owns
    batching across images, caching and resumption.
    """

    uncached_params = frozenset({"batch_size", "batch_tokens", "device"})

    def load(self, standard: Standard) -> None:
        """Load weights once and check the standard fits (e.g. labels are single tokens)."""

    @property
    def batch_size(self) -> int:
        """How many views one ``score`` call should receive."""
        return int(getattr(self.params, "batch_size", 8))

    @property
    def batch_tokens(self) -> int | None:
        """At most this many tokens (``view_tokens``) in one ``score`` call; None: no limit."""
        value = getattr(self.params, "batch_tokens", None)
        return None if value is None else int(value)

    def view_tokens(self, size: tuple[int, int]) -> int | None:
        """What a view of ``size`` (width, height) costs the model, in tokens, known without the
        model. The engine fills batches up to ``batch_tokens`` with it. None: unknown."""
        return None

    def input_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The pixel size (width, height) the model sees for a view of ``size``, known without the
        model. It lets the engine shrink a large view once before ``prepare`` when a recipe asks
        for it. None: unknown."""
        return None

    def level_values(self, standard: Standard) -> tuple[float, ...]:
        """The level values of the columns ``score`` returns for ``standard``; known before any
        weights load, so validation can check that an ensemble can combine its scorers."""
        return tuple(standard.values)

    @abstractmethod
    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs: ...

    def prepare(self, views: Sequence[View], standard: Standard) -> Any:
        """CPU work for one batch (resize, normalise, tokenise), kept apart so the engine can
        run it in a background thread while the previous batch is on the accelerator. It must
        not use the model. Default: nothing to do; ``forward`` gets the views."""
        return views

    def forward(self, prepared: Any, standard: Standard) -> LevelProbs:
        """Score what ``prepare`` returned. A scorer that splits its work overrides both."""
        return self.score(prepared, standard)


class Aggregator(Component):
    """Combines scores. ``stage`` says where in the recipe it may be used."""

    stage: ClassVar[Literal["regions", "scorers"]]


class RegionAggregator(Aggregator):
    """Region scores of one image, for one scorer -> one score."""

    stage = "regions"
    needs_global: ClassVar[bool] = False  # True: the recipe must score the whole image

    @abstractmethod
    def combine(self, scores: np.ndarray, regions: Sequence[Region]) -> float:
        """``scores`` aligns with ``regions``; the global region has kind 'global'."""


class ScorerAggregator(Aggregator):
    """Per-scorer scores of one image -> the image score."""

    stage = "scorers"

    def check(self, ranges: Sequence[tuple[float, float]]) -> None:
        """Raise ValueError if this aggregator cannot combine scorers with these level ranges.

        Called at validation with one (min, max) level value per scorer, so a recipe that
        would fail at aggregation fails before any model work.
        """

    @abstractmethod
    def combine(self, scores: np.ndarray, ranges: Sequence[tuple[float, float]]) -> float:
        """``ranges[i]`` is scorer i's (min, max) level value, for mixing different K."""


COMPONENT_KINDS: dict[str, type[Component]] = {
    "segmenters": Segmenter,
    "scorers": Scorer,
    "standards": Standard,
    "aggregators": Aggregator,
}
