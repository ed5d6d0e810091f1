"""Conformance checks for plugin authors: call them from your own tests.

    from iqa_core.testing import check_scorer

    def test_contract():
        check_scorer(SharpnessScorer, {"sharp": 500})

Each check builds the component from ``params`` the way a recipe does, checks the class
against the plugin contract (as the registry does when it loads a plugin), then calls it
the way the engine does on small synthetic inputs and checks what comes back. A failure
raises AssertionError naming the class and the rule; the checks return what they
produced so a test can assert more.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import contract, registry
from .api import (
    Component,
    LevelProbs,
    Region,
    RegionAggregator,
    Scorer,
    ScorerAggregator,
    Segmenter,
    Standard,
    View,
)

SIZES = ((64, 48), (33, 97), (120, 90))  # (width, height): landscape, thin portrait, larger


def _build(cls: type[Component], params: dict[str, Any] | None, base: type[Component]) -> Any:
    name = cls.__qualname__
    assert isinstance(cls, type) and issubclass(cls, base), f"{name} is not a {base.__name__} subclass"
    broken = contract.problems(cls)
    assert not broken, f"{name} breaks the plugin contract: {'; '.join(broken)}"
    component = cls(cls.Params.model_validate(params or {}))
    key = component.cache_key()
    assert key == cls(cls.Params.model_validate(params or {})).cache_key(), f"{name}: cache_key() is not stable"
    return component


def synthetic_images(sizes: tuple[tuple[int, int], ...] = SIZES, seed: int = 0) -> list[Any]:
    """RGB PIL images with edges and texture, one per (width, height)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for w, h in sizes:
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx // 8 + yy // 8) % 2 * 200], -1)
        img = img + rng.integers(0, 30, img.shape)
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))
    return out


def check_standard(cls: type[Standard], params: dict[str, Any] | None = None) -> Standard:
    """Levels ascending and aligned with labels and descriptions; texts are strings."""
    std = _build(cls, params, Standard)
    name = cls.__qualname__
    values, labels, descriptions = tuple(std.values), tuple(std.labels), tuple(std.descriptions)
    assert len(values) >= 2, f"{name}: a standard needs at least 2 levels, has {len(values)}"
    assert list(values) == sorted(set(values)), f"{name}: values must be distinct and ascending, got {values}"
    assert len(labels) == len(values) == len(descriptions), (
        f"{name}: {len(values)} values, {len(labels)} labels and {len(descriptions)} descriptions must align"
    )
    assert len(set(labels)) == len(labels) and all(labels), f"{name}: labels must be distinct and non-empty"
    assert isinstance(std.system, str) and isinstance(std.user, str), f"{name}: system and user must be strings"
    assert std.prompt_key() == cls(std.params).prompt_key(), f"{name}: prompt_key() is not stable"
    return std


def check_scorer(
    cls: type[Scorer], params: dict[str, Any] | None = None, standard: Standard | None = None
) -> LevelProbs:
    """Scores views of several sizes through ``prepare``/``forward`` and ``score``.

    Checks: an (N, K) probability array (finite, non-negative, rows summing to 1) over
    ascending level values, the ones ``level_values`` declares; the same rows whether a view
    is scored alone or in a batch, and on a second call (the engine caches per view and
    batches freely). ``standard`` defaults to the 7-level ``word`` standard.
    """
    scorer = _build(cls, params, Scorer)
    name = cls.__qualname__
    standard = standard or registry.get("standards", "word")({"levels": 7})
    assert isinstance(scorer.batch_size, int) and scorer.batch_size >= 1, f"{name}: batch_size must be >= 1"
    scorer.load(standard)
    views = [View(image, f"view{i}") for i, image in enumerate(synthetic_images())]
    out = scorer.forward(scorer.prepare(views, standard), standard)
    assert isinstance(out, LevelProbs), f"{name}: forward() must return LevelProbs, got {type(out).__name__}"
    probs, values = out.probs, tuple(out.values)
    assert probs.shape == (len(views), len(values)), f"{name}: {len(views)} views gave probabilities {probs.shape}"
    assert list(values) == sorted(set(values)), f"{name}: level values must be distinct and ascending, got {values}"
    declared = tuple(scorer.level_values(standard))
    assert declared == values, f"{name}: level_values() says {declared}, but the scores come over {values}"
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0), f"{name}: probabilities must be finite and >= 0"
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4), f"{name}: rows must sum to 1, got {probs.sum(axis=1)}"
    again = scorer.score(views, standard)
    assert np.allclose(again.probs, probs, atol=1e-4), f"{name}: score() disagrees with prepare()+forward()"
    alone = np.concatenate([scorer.score([v], standard).probs for v in views])
    assert np.allclose(alone, probs, atol=1e-3), (
        f"{name}: a view's probabilities depend on the other views in its batch (max difference "
        f"{np.abs(alone - probs).max():.2g}); the engine batches views of different images together"
    )
    return out


def check_segmenter(cls: type[Segmenter], params: dict[str, Any] | None = None) -> list[np.ndarray]:
    """Segments a synthetic image: boolean 2-D masks, all one size, with the image's aspect ratio."""
    segmenter = _build(cls, params, Segmenter)
    name = cls.__qualname__
    segmenter.load()
    image = np.asarray(synthetic_images(((96, 64),))[0])
    masks = segmenter.segment(image)
    assert isinstance(masks, list), f"{name}: segment() must return a list of masks, got {type(masks).__name__}"
    shapes = {np.asarray(m).shape for m in masks}
    assert len(shapes) <= 1, f"{name}: masks of one image must share one size, got {sorted(shapes)}"
    for m in masks:
        m = np.asarray(m)
        assert m.ndim == 2 and m.dtype == bool, f"{name}: masks must be 2-D boolean arrays, got {m.dtype} {m.shape}"
        h, w = m.shape
        assert math.isclose(w / h, 96 / 64, rel_tol=0.1), f"{name}: a {w}x{h} mask for a 96x64 image"
    return masks


def check_aggregator(cls: type[RegionAggregator | ScorerAggregator], params: dict[str, Any] | None = None) -> float:
    """Combines sample scores into one finite number, as the engine calls it."""
    agg = _build(cls, params, RegionAggregator if issubclass(cls, RegionAggregator) else ScorerAggregator)
    name = cls.__qualname__
    if isinstance(agg, RegionAggregator):
        regions = [
            Region("global", (0, 0, 10, 10), 1.0),
            Region("object", (0, 0, 5, 5), 0.25),
            Region("complement", (0, 0, 10, 10), 0.75),
        ]
        result = agg.combine(np.array([4.0, 6.0, 2.0]), regions)
    else:
        ranges = [(1.0, 7.0), (1.0, 7.0)]
        agg.check(ranges)
        result = agg.combine(np.array([4.0, 6.0]), ranges)
    assert isinstance(result, float | int | np.floating) and math.isfinite(result), (
        f"{name}: combine() must return a finite number, got {result!r}"
    )
    return float(result)
