"""Stage 3, views: each region's view identity (part of its store key) and its pixels.

With ``regions.prescale`` a JPEG may be decoded reduced (``LoadedImage.reduced``) and each view
is shrunk to its scorer's input size before ``prepare``: other pixels than a full-resolution
cut, so such views carry their own store keys.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..api import Region, Scorer, Segmenter, Standard, View, ViewMode
from ..images import LeastSize, LoadedImage
from ..regions import crop_view, reduced_view, reduction
from ..store import ViewKey


@dataclass(frozen=True)
class Views:
    """How a recipe turns regions into views: ``local`` is bbox, mask or None (no local views).

    ``prescale`` (the recipe's ``regions.prescale``): False cuts every view from the image
    as decoded in full; True or a long side in pixels lets the reader decode JPEGs reduced
    (:meth:`least_decode`) and shrinks each view to its scorer's ``input_size``.
    """

    local: ViewMode | None
    min_side: int
    prescale: bool | int = False

    def mode(self, region: Region) -> ViewMode:
        return self.local if region.kind != "global" and self.local is not None else "whole"

    def key(self, loaded: LoadedImage, region: Region, scorer: Scorer, std: Standard) -> ViewKey:
        """(image hash, view, scorer config, standard texts): what a view's level probabilities are stored under."""
        view = region.view_key(self.mode(region))
        x0, y0, x1, y1 = self._box(loaded, region)
        if view != "whole" and min(x1 - x0, y1 - y0) < self.min_side:
            view += f"@{self.min_side}"  # crop_view upscales it: other pixels than without min_side
        if self.prescale:  # shrunk to the scorer's input size (in its config), from a 1/reduced decode
            view += f"@prescale/{loaded.reduced}"
        return (loaded.content_hash, view, scorer.cache_key(), std.prompt_key())

    def cut(self, loaded: LoadedImage, region: Region, key: ViewKey, scorer: Scorer | None = None) -> View:
        """The view's pixels, cut from the image as decoded (full resolution unless prescaled).

        A bbox view whose box is the whole frame (a complement often is) is the image itself:
        the same pixels, without a full-size copy. With ``prescale``, ``scorer`` (when given)
        says how far the view may shrink.
        """
        mode = self.mode(region)
        size = loaded.image.size
        region = replace(region, bbox=self._box(loaded, region))
        whole_frame = mode == "bbox" and region.bbox == (0, 0, *size) and min(size) >= self.min_side
        mode = "whole" if whole_frame else mode
        if self.prescale and scorer is not None:
            image = reduced_view(loaded.image, region, mode, self.min_side, scorer.input_size)
        else:
            image = crop_view(loaded.image, region, mode, self.min_side)
        return View(image=image, key=key[1], source=loaded.path)

    def size(self, loaded: LoadedImage, region: Region, scorer: Scorer | None = None) -> tuple[int, int]:
        """The view's pixel size (width, height), known without cutting it: what batching sorts by."""
        whole = self.mode(region) == "whole"
        x0, y0, x1, y1 = (0, 0, *loaded.image.size) if whole else self._box(loaded, region)
        w, h = x1 - x0, y1 - y0
        factor = reduction((w, h), scorer.input_size, self.min_side) if self.prescale and scorer is not None else 1
        if factor > 1:  # Image.reduce rounds up
            return -(-w // factor), -(-h // factor)
        short = min(w, h)
        if not whole and 0 < short < self.min_side:  # crop_view upscales it, aspect kept
            scale = self.min_side / short
            return max(self.min_side, round(w * scale)), max(self.min_side, round(h * scale))
        return w, h

    def least_decode(self, segmenter: Segmenter | None, scorers: Sequence[Scorer]) -> LeastSize | None:
        """What a reduced JPEG decode must keep of an image of ``size``: the ``segmenter``'s working
        size (None: it does not run), every scorer's input size for the whole image (a scorer
        that cannot tell keeps the full size), and ``prescale``'s long side. None: prescale off."""
        if not self.prescale:
            return None
        side = 0 if self.prescale is True else int(self.prescale)

        def least(size: tuple[int, int]) -> tuple[int, int]:
            scale = min(1.0, side / max(size))
            needs = [(math.ceil(size[0] * scale), math.ceil(size[1] * scale))]
            needs.append(segmenter.working_size(size) if segmenter is not None else (1, 1))
            needs += [scorer.input_size(size) or size for scorer in scorers]
            return max(w for w, _ in needs), max(h for _, h in needs)

        return least

    @staticmethod
    def _box(loaded: LoadedImage, region: Region) -> tuple[int, int, int, int]:
        """``region``'s box in the pixels as decoded: its own box unless the decode was reduced."""
        if loaded.reduced == 1:
            return region.bbox
        (w, h), (fw, fh) = loaded.image.size, loaded.size
        x0, y0, x1, y1 = region.bbox
        left, top = min(x0 * w // fw, w - 1), min(y0 * h // fh, h - 1)
        right, bottom = -(-x1 * w // fw), -(-y1 * h // fh)  # rounded out: the box keeps all it covered
        return left, top, max(min(right, w), left + 1), max(min(bottom, h), top + 1)
