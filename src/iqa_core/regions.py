"""Algorithm 1 (segmentation process pipeline), mask RLE, and the views cut from regions.

Masks arrive at the segmenter's working resolution; areas are fractions (resolution
free) and bounding boxes are mapped to original pixel coordinates, so a 12-megapixel
input never needs full-resolution masks except for one ``mask`` view at a time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .api import Region, ViewMode


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE with ``counts`` as str, so it serialises to JSON."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    counts = rle["counts"]
    coco = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(coco).astype(bool)


def _bbox(mask: np.ndarray, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Tight box of ``mask`` (working resolution) in original pixel coordinates."""
    h, w = mask.shape
    width, height = image_size
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    sx, sy = width / w, height / h
    x0 = min(int(math.floor(cols[0] * sx)), width - 1)
    y0 = min(int(math.floor(rows[0] * sy)), height - 1)
    x1 = max(min(int(math.ceil((cols[-1] + 1) * sx)), width), x0 + 1)
    y1 = max(min(int(math.ceil((rows[-1] + 1) * sy)), height), y0 + 1)
    return (x0, y0, x1, y1)


def build_regions(
    masks: Sequence[np.ndarray],
    image_size: tuple[int, int],
    min_area: float,
    complement: bool = True,
) -> list[Region]:
    """Algorithm 1: the global region, every mask with area >= ``min_area``, and the complement.

    ``min_area`` is a fraction of the image. Overlapping masks each keep their own
    area; the complement is what no kept mask covers, added when its area is
    >= ``min_area`` (and non-empty): with no masks at all it is the whole image.
    A mask identical to one already kept is dropped: on degenerate images (1x1,
    1280x10) a segmenter returns the same mask dozens of times, since box NMS
    cannot suppress boxes of zero area, and each copy would add its area again.
    ``image_size`` is (width, height).
    """
    width, height = image_size
    regions = [Region("global", (0, 0, width, height), 1.0)]
    masks = [np.asarray(m, dtype=bool) for m in masks] or [np.zeros((1, 1), dtype=bool)]
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"a segmenter returned masks of differing or non-2D shapes: {sorted(shapes)}")
    shape = next(iter(shapes))
    covered = np.zeros(shape, dtype=bool)
    total = float(shape[0] * shape[1])
    kept: set[bytes] = set()
    for mask in masks:
        area = mask.sum() / total
        digest = hashlib.sha256(np.packbits(mask).tobytes()).digest()
        if area > 0 and area >= min_area and digest not in kept:
            kept.add(digest)
            regions.append(Region("object", _bbox(mask, image_size), float(area), encode_rle(mask)))
            covered |= mask
    rest = ~covered
    rest_area = rest.sum() / total
    if complement and rest_area > 0 and rest_area >= min_area:
        regions.append(Region("complement", _bbox(rest, image_size), float(rest_area), encode_rle(rest)))
    return regions


def crop_view(image: Image.Image, region: Region, mode: ViewMode, min_side: int = 0) -> Image.Image:
    """The pixels a scorer sees for ``region``.

    ``bbox`` crops the original pixels (the paper's best); ``mask`` also zeroes
    what lies outside the mask; ``whole`` (and the global region) is the image.
    Crops thinner than ``min_side`` are upscaled (aspect kept) so every vision
    processor accepts them.
    """
    if mode == "whole" or region.kind == "global":
        return image
    x0, y0, x1, y1 = region.bbox
    view = image.crop(region.bbox)
    if mode == "mask":
        assert region.rle is not None
        mask = decode_rle(region.rle)
        h, w = mask.shape
        sx, sy = w / image.width, h / image.height
        window = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        alpha = Image.fromarray(mask.astype(np.uint8) * 255).resize(view.size, Image.Resampling.NEAREST, box=window)
        view = Image.composite(view, Image.new("RGB", view.size), alpha)
    short = min(view.size)
    if short < min_side:
        scale = min_side / short
        view = view.resize(
            (max(min_side, round(view.width * scale)), max(min_side, round(view.height * scale))),
            Image.Resampling.BICUBIC,
        )
    return view


def reduced_view(
    image: Image.Image,
    region: Region,
    mode: ViewMode,
    min_side: int,
    least: Callable[[tuple[int, int]], tuple[int, int] | None],
) -> Image.Image:
    """:func:`crop_view`'s view, reduced by :func:`reduction` (``least``: the view's size -> the
    least size its scorer needs, or None). A box is reduced straight from the image, in one
    pass, without the full-resolution crop ``crop_view`` copies out first."""
    box = (0, 0, *image.size) if mode == "whole" or region.kind == "global" else region.bbox
    factor = reduction((box[2] - box[0], box[3] - box[1]), least, min_side)
    if factor == 1:
        return crop_view(image, region, mode, min_side)
    if mode == "mask" and region.kind != "global":
        return crop_view(image, region, mode).reduce(factor)  # zeroed outside the mask at full size, then reduced
    return image.reduce(factor, box)


def reduction(
    size: tuple[int, int], least: Callable[[tuple[int, int]], tuple[int, int] | None], min_side: int = 0
) -> int:
    """The largest whole factor a view of ``size`` can be reduced by (``Image.reduce``: the mean of
    each factor x factor block, rounded up at the edges) keeping at least ``least(size)`` pixels
    each way, and ``min_side``. 1 when ``least`` gives None (the scorer cannot tell)."""
    need = least(size)
    if need is None:
        return 1
    w, h = size
    factor = min(w // max(1, need[0]), h // max(1, need[1]))
    if min_side:
        factor = min(factor, min(w, h) // min_side)
    return max(1, factor)
