"""Stage 3, views: each region's view identity (part of its store key) and its pixels."""

from __future__ import annotations

from dataclasses import dataclass

from ..api import Region, Scorer, Standard, View, ViewMode
from ..images import LoadedImage
from ..regions import crop_view
from ..store import ViewKey


@dataclass(frozen=True)
class Views:
    """How a recipe turns regions into views: ``local`` is bbox, mask or None (no local views)."""

    local: ViewMode | None
    min_side: int

    def mode(self, region: Region) -> ViewMode:
        return self.local if region.kind != "global" and self.local is not None else "whole"

    def key(self, loaded: LoadedImage, region: Region, scorer: Scorer, std: Standard) -> ViewKey:
        """(image hash, view, scorer config, standard texts): what a view's level probabilities are stored under."""
        view = region.view_key(self.mode(region))
        x0, y0, x1, y1 = region.bbox
        if view != "whole" and min(x1 - x0, y1 - y0) < self.min_side:
            view += f"@{self.min_side}"  # crop_view upscales it: other pixels than without min_side
        return (loaded.content_hash, view, scorer.cache_key(), std.prompt_key())

    def cut(self, loaded: LoadedImage, region: Region, key: ViewKey) -> View:
        """The view's pixels, cut from the full-resolution image.

        A bbox view whose box is the whole frame (a complement often is) is the image itself:
        the same pixels, without a full-size copy.
        """
        mode = self.mode(region)
        whole_frame = mode == "bbox" and region.bbox == (0, 0, *loaded.size) and min(loaded.size) >= self.min_side
        image = loaded.image if whole_frame else crop_view(loaded.image, region, mode, self.min_side)
        return View(image=image, key=key[1], source=loaded.path)

    def size(self, loaded: LoadedImage, region: Region) -> tuple[int, int]:
        """The view's pixel size (width, height), known without cutting it: what batching sorts by."""
        if self.mode(region) == "whole":
            return loaded.size
        x0, y0, x1, y1 = region.bbox
        w, h = x1 - x0, y1 - y0
        short = min(w, h)
        if 0 < short < self.min_side:  # crop_view upscales it, aspect kept
            scale = self.min_side / short
            return max(self.min_side, round(w * scale)), max(self.min_side, round(h * scale))
        return w, h
