"""The real workload's region count without trained SAM2 weights.

Random SAM2 weights keep almost no object mask, so an end-to-end figure with them scores ~2
views per image, while real photos at the paper's settings give ~8.2 (7.22 masks + the whole
image, DESIGN.md §3). :class:`FixedRegions` runs a segmenter for its cost, throws its masks
away and returns seven fixed masks of mixed sizes (one covering most of the image, the
smallest just above the benchmark's 1 % area threshold), so Algorithm 1 yields 7 objects +
the complement + the whole image: 9 views per image, at every input size.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from iqa_core.api import Segmenter

# (kind, x0, y0, x1, y1) as fractions of the width and height: area fractions ~0.77, 0.16,
# 0.075, 0.038, 0.03, 0.015, 0.016; they leave ~15 % of the image uncovered (the complement).
LAYOUT = (
    ("rect", 0.0, 0.1, 0.9, 0.95),
    ("ellipse", 0.1, 0.15, 0.5, 0.65),
    ("rect", 0.55, 0.5, 0.8, 0.8),
    ("ellipse", 0.65, 0.13, 0.85, 0.37),
    ("rect", 0.05, 0.7, 0.2, 0.9),
    ("ellipse", 0.44, 0.07, 0.56, 0.23),
    ("rect", 0.85, 0.02, 0.97, 0.15),
)


def fixed_masks(height: int, width: int) -> list[np.ndarray]:
    """The seven :data:`LAYOUT` masks at ``height x width``, boolean."""
    yy, xx = np.mgrid[0:height, 0:width]
    fx, fy = (xx + 0.5) / width, (yy + 0.5) / height
    masks = []
    for kind, x0, y0, x1, y1 in LAYOUT:
        if kind == "rect":
            m = (fx >= x0) & (fx < x1) & (fy >= y0) & (fy < y1)
        else:
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            m = ((fx - cx) / rx) ** 2 + ((fy - cy) / ry) ** 2 <= 1.0
        masks.append(m)
    return masks


class FixedRegions(Segmenter):
    """Runs ``inner`` (or nothing) on each image for its cost, then returns :func:`fixed_masks`
    at the working resolution ``inner`` would use (long side at most ``max_side``)."""

    def __init__(self, inner: Segmenter | None, max_side: int = 1024) -> None:
        super().__init__()
        self.inner = inner
        self.max_side = max_side

    def cache_key(self) -> str:
        inner = self.inner.cache_key() if self.inner is not None else "none"
        return hashlib.sha256(f"fixed-regions:{inner}:{self.max_side}".encode()).hexdigest()[:16]

    def load(self) -> None:
        if self.inner is not None:
            self.inner.load()

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The inner segmenter's (the core then resizes once, for it); else ``max_side``'s."""
        if self.inner is not None:
            return self.inner.working_size(size)
        w, h = size
        scale = min(1.0, self.max_side / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))

    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        if self.inner is not None:
            self.inner.segment(image)
        h, w = image.shape[:2]
        mw, mh = self.working_size((w, h))
        return fixed_masks(mh, mw)


def describe() -> dict[str, Any]:
    """The layout for the benchmark's JSON."""
    return {"masks": len(LAYOUT), "layout": [list(item) for item in LAYOUT]}
