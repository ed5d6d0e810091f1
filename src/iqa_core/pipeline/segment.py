"""Stage 2, segment: cached results skip ahead; masks come from the store or the segmenter;
Algorithm 1 turns them into regions; a flush mark bounds how many images wait for batches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..api import Region, Segmenter
from ..errors import IQAError
from ..images import LoadedImage
from ..regions import build_regions, decode_rle, encode_rle
from .items import Flush, Item, describe
from .read import Decoded, ReadAhead

if TYPE_CHECKING:
    from .core import Pipeline


def masks(pipeline: Pipeline, loaded: LoadedImage) -> list[dict[str, Any]]:
    """The segmenter's raw masks as RLE, from the store or the model (then stored)."""
    seg_key = pipeline.mask_key(loaded)
    with pipeline.store_lock:
        rles = pipeline.store.get_masks(loaded.content_hash, seg_key)
    if rles is None:
        pipeline.load_segmenter()
        start = time.perf_counter()
        found = pipeline.segmenter.segment(np.asarray(working_image(pipeline.segmenter, loaded.image)))
        pipeline.stats["segment_s"] += time.perf_counter() - start  # how long the stage is busy
        pipeline.stats["segmenter_calls"] += 1
        rles = [encode_rle(np.asarray(m, dtype=bool)) for m in found]
        with pipeline.store_lock:
            pipeline.store.put_masks(loaded.content_hash, seg_key, rles)
    return rles


def working_image(segmenter: Segmenter, image: Image.Image) -> Image.Image:
    """The image at the segmenter's working size: resized once, never copied at full size."""
    size = segmenter.working_size(image.size)
    return image if tuple(size) == image.size else image.resize(size, Image.Resampling.BILINEAR)


def regions(pipeline: Pipeline, loaded: LoadedImage) -> list[Region]:
    """The regions an image is scored on: Algorithm 1 over its masks, the whole image, or both."""
    spec = pipeline.recipe.regions
    if not pipeline.segments:  # no local regions: the whole image stands in, as in aggregation
        return [Region("global", (0, 0, *loaded.size), 1.0)]
    found = build_regions([decode_rle(r) for r in masks(pipeline, loaded)], loaded.size, spec.min_area, spec.complement)
    local = [r for r in found if r.kind != "global"]
    return found if pipeline.score_whole or not local else local


def to_item(pipeline: Pipeline, decoded: Decoded) -> Item:
    """A read input -> an item to score, a cached result or an error row.

    A user error (e.g. the segmenter's weights) stops the run; any other failure is this image's.
    """
    item = Item(decoded.index, decoded.path, decoded.loaded, error=decoded.error, nbytes=decoded.nbytes)
    if decoded.cached is not None:  # looked up by the reader
        item.cached, item.content_hash = decoded.cached, decoded.cached.content_hash
        return item
    loaded = decoded.loaded
    if loaded is None:
        return item
    item.content_hash = loaded.content_hash
    try:
        item.regions = regions(pipeline, loaded)
    except IQAError:
        raise
    except Exception as exc:  # one image's segmentation failure must not stop the run
        item.error = describe("segmentation", exc, decoded.path)
    return item


def closes_group(index: int, count: int, held: int, need: int, size: int, limit: int) -> bool:
    """Whether ``count`` images waiting for batches (``held`` budget bytes) are flushed before
    input ``index``, which needs ``need``: at every ``size``-th input, or before ``limit`` would
    be passed. A group never spans two chunks of ``size`` inputs, so the Ray executor's
    workers form the same groups, each from its own chunk."""
    return count > 0 and (index % size == 0 or held + need > limit)


def items(pipeline: Pipeline, reader: ReadAhead) -> Iterator[Item | Flush]:
    """Read and segment images, in input order; a :class:`Flush` closes a batching group.

    Batches form from the views as they arrive (see ``batches``); a flush makes the views
    still waiting go now, at every ``runtime.chunk_images``-th input or, before the next image
    would take them over, once half the byte budget waits: so the images waiting for batches and
    those being scored fit together, and nothing waits for room only its own release would
    free. Both rules depend on the inputs alone, so batches (and their numerics) are
    reproducible.
    """
    size = pipeline.recipe.runtime.chunk_images
    limit = reader.budget.limit // 2
    count = held = 0
    index = 0
    while reader.has(index):
        need = reader.size(index)
        if closes_group(index, count, held, need, size, limit):
            yield Flush()
            count = held = 0
        decoded = reader.next()
        if decoded is None:  # stopped
            return
        item = to_item(pipeline, decoded)
        if not item.to_score:  # a cached result or an error row: its pixels go now
            reader.budget.release(item.nbytes)
            item.loaded, item.nbytes = None, 0
        yield item
        count += 1
        held += need
        index += 1
