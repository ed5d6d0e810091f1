"""Algorithm 1 (build_regions) on hand-made masks, RLE, and the views cut from regions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iqa_core.api import Region
from iqa_core.regions import build_regions, crop_view, decode_rle, encode_rle


def box(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def kinds(regions: list[Region]) -> list[str]:
    return [r.kind for r in regions]


def test_rle_round_trip_is_json_friendly() -> None:
    m = box((7, 9), 1, 4, 2, 8)
    rle = encode_rle(m)
    assert rle["size"] == [7, 9] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(decode_rle(rle), m)


def test_threshold_keeps_and_drops_masks() -> None:
    shape = (10, 10)
    big = box(shape, 0, 5, 0, 4)  # 0.20
    edge = box(shape, 5, 10, 0, 2)  # 0.10: exactly t, kept (area >= t)
    small = box(shape, 9, 10, 9, 10)  # 0.01
    regions = build_regions([big, edge, small], (10, 10), min_area=0.10)
    assert kinds(regions) == ["global", "object", "object", "complement"]
    assert regions[0].bbox == (0, 0, 10, 10) and regions[0].area == 1.0 and regions[0].rle is None
    assert [r.area for r in regions[1:3]] == pytest.approx([0.20, 0.10])
    # the dropped mask does not shrink the complement
    assert regions[3].area == pytest.approx(0.70)
    np.testing.assert_array_equal(decode_rle(regions[3].rle), ~(big | edge))
    # t just above 0.10 drops `edge` too
    regions = build_regions([big, edge, small], (10, 10), min_area=0.11)
    assert kinds(regions) == ["global", "object", "complement"]
    assert regions[2].area == pytest.approx(0.80)


def test_complement_added_iff_its_area_reaches_t() -> None:
    shape = (10, 10)
    masks = [box(shape, 0, 10, 0, 7)]  # 0.7; complement 0.3
    assert kinds(build_regions(masks, (10, 10), 0.3)) == ["global", "object", "complement"]
    assert kinds(build_regions(masks, (10, 10), 0.31)) == ["global", "object"]
    masks = [box(shape, 0, 10, 0, 8)]  # 0.8; complement 0.2
    assert kinds(build_regions(masks, (10, 10), 0.2)) == ["global", "object", "complement"]
    assert kinds(build_regions(masks, (10, 10), 0.25)) == ["global", "object"]
    assert kinds(build_regions(masks, (10, 10), 0.2, complement=False)) == ["global", "object"]


def test_overlapping_masks_keep_their_areas_and_complement_is_uncovered_pixels() -> None:
    shape = (10, 10)
    a = box(shape, 0, 6, 0, 6)  # 0.36
    b = box(shape, 3, 9, 3, 9)  # 0.36, overlaps a on 3x3
    regions = build_regions([a, b], (10, 10), min_area=0.0)
    assert kinds(regions) == ["global", "object", "object", "complement"]
    assert regions[1].area == pytest.approx(0.36) and regions[2].area == pytest.approx(0.36)
    union = a | b  # 36 + 36 - 9 = 63 pixels
    assert regions[3].area == pytest.approx(0.37)
    np.testing.assert_array_equal(decode_rle(regions[3].rle), ~union)
    assert regions[3].bbox == (0, 0, 10, 10)


def test_empty_mask_list_gives_whole_image_complement() -> None:
    regions = build_regions([], (40, 30), min_area=0.5)
    assert kinds(regions) == ["global", "complement"]
    assert regions[1].area == 1.0 and regions[1].bbox == (0, 0, 40, 30)
    assert kinds(build_regions([], (40, 30), 0.5, complement=False)) == ["global"]


def test_all_covering_masks_leave_no_complement() -> None:
    shape = (8, 8)
    halves = [box(shape, 0, 8, 0, 4), box(shape, 0, 8, 4, 8)]
    assert kinds(build_regions(halves, (8, 8), 0.0)) == ["global", "object", "object"]
    full = [np.ones(shape, dtype=bool)]
    assert kinds(build_regions(full, (8, 8), 0.0)) == ["global", "object"]


def test_empty_masks_are_never_regions() -> None:
    shape = (4, 4)
    regions = build_regions([np.zeros(shape, dtype=bool)], (4, 4), 0.0)
    assert kinds(regions) == ["global", "complement"]


def test_identical_masks_are_one_region() -> None:
    """A 1x1 image got 41 identical full-image regions whose areas summed to 41.0."""
    regions = build_regions([np.ones((1, 1), dtype=bool)] * 41, (1, 1), min_area=0.01)
    assert kinds(regions) == ["global", "object"] and regions[1].area == 1.0
    thin = [box((1, 64), 0, 1, 0, 32), box((1, 64), 0, 1, 16, 64)]
    regions = build_regions(thin * 24, (6400, 10), min_area=0.01)
    assert kinds(regions) == ["global", "object", "object"]


def test_object_areas_sum_to_the_real_overlap() -> None:
    """Distinct masks count each covered pixel once per mask that covers it, never more."""
    rng = np.random.default_rng(0)
    distinct = [rng.random((12, 10)) < p for p in (0.2, 0.4, 0.6)]
    masks = [distinct[i] for i in rng.integers(0, 3, 30)] + distinct
    objects = [r for r in build_regions(masks, (10, 12), min_area=0.0) if r.kind == "object"]
    assert len(objects) == 3
    layers = np.sum(distinct, axis=0) / distinct[0].size
    assert sum(r.area for r in objects) == pytest.approx(layers.sum())


def test_low_resolution_masks_map_to_original_coordinates() -> None:
    # image 400x300 (w x h), masks at 40x30 (scale 10)
    shape = (30, 40)
    m = box(shape, 3, 9, 5, 12)  # rows 3..8, cols 5..11
    regions = build_regions([m], (400, 300), 0.0)
    assert regions[1].bbox == (50, 30, 120, 90)
    assert regions[1].area == pytest.approx(42 / 1200)
    assert regions[1].rle["size"] == [30, 40]
    # non-integer scale: image 100x75, masks 40x30 (2.5x)
    regions = build_regions([box(shape, 1, 3, 1, 3)], (100, 75), 0.0)
    x0, y0, x1, y1 = regions[1].bbox
    assert (x0, y0) == (2, 2) and (x1, y1) == (8, 8)  # floor(1*2.5), ceil(3*2.5)


def test_mixed_mask_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differing"):
        build_regions([np.zeros((4, 4), bool), np.zeros((5, 5), bool)], (4, 4), 0.0)


# ---------------------------------------------------------------------- views


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))


def test_bbox_view_is_the_crop_of_original_pixels(image: Image.Image) -> None:
    m = box((30, 40), 5, 20, 10, 30)  # half resolution
    region = build_regions([m], image.size, 0.0)[1]
    assert region.bbox == (20, 10, 60, 40)
    view = crop_view(image, region, "bbox")
    assert view.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(view), np.asarray(image.crop((20, 10, 60, 40))))


def test_mask_view_zeroes_outside_the_mask(image: Image.Image) -> None:
    m = np.zeros((30, 40), dtype=bool)
    m[5:20, 10:30] = True
    m[5:10, 10:15] = False  # a notch inside the bbox
    region = build_regions([m], image.size, 0.0)[1]
    view = np.asarray(crop_view(image, region, "mask"))
    orig = np.asarray(image.crop(region.bbox))
    full = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)[10:40, 20:60]
    np.testing.assert_array_equal(view[full], orig[full])
    assert not view[~full].any()
    assert (~full).sum() == 10 * 10  # the notch, upscaled


def test_whole_view_returns_the_image(image: Image.Image) -> None:
    regions = build_regions([box((30, 40), 0, 10, 0, 10)], image.size, 0.0)
    assert crop_view(image, regions[0], "bbox") is image  # global region
    assert crop_view(image, regions[1], "whole") is image


def test_thin_crops_are_upscaled_to_min_side(image: Image.Image) -> None:
    region = Region("object", (10, 10, 70, 14), 0.05, encode_rle(box((60, 80), 10, 14, 10, 70)))
    view = crop_view(image, region, "bbox", min_side=32)
    assert min(view.size) == 32 and view.size == (480, 32)  # aspect kept
    assert crop_view(image, region, "bbox", min_side=0).size == (60, 4)
    mask_view = crop_view(image, region, "mask", min_side=16)
    assert mask_view.size == (240, 16)
