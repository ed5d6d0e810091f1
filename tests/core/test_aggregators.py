"""Every aggregator against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from iqa_core import registry
from iqa_core.api import Region, RegionAggregator, ScorerAggregator

G = Region("global", (0, 0, 10, 10), 1.0)
A = Region("object", (0, 0, 5, 5), 0.25)
B = Region("object", (5, 5, 10, 10), 0.15)
C = Region("complement", (0, 0, 10, 10), 0.60)
REGIONS = [G, A, B, C]
SCORES = np.array([4.0, 6.0, 2.0, 3.0])
# local: mean = (6 + 2 + 3) / 3 = 11/3; area = (0.25*6 + 0.15*2 + 0.6*3) / 1.0 = 3.6


def agg(name: str, **params) -> RegionAggregator | ScorerAggregator:
    return registry.get("aggregators", name)(params)


def test_mean_and_area() -> None:
    assert agg("mean").combine(SCORES, REGIONS) == pytest.approx(11 / 3)
    assert agg("area").combine(SCORES, REGIONS) == pytest.approx(3.6)
    # weights are areas, normalised: areas not summing to 1 (overlaps, dropped masks)
    regions = [G, Region("object", (0, 0, 1, 1), 0.1), Region("object", (0, 0, 1, 1), 0.3)]
    assert agg("area").combine(np.array([9.0, 1.0, 5.0]), regions) == pytest.approx(4.0)


def test_area_normalize_image_is_the_printed_inner_product() -> None:
    # tiling regions (0.25 + 0.15 + 0.6 = 1): both readings agree
    assert agg("area", normalize="image").combine(SCORES, REGIONS) == pytest.approx(3.6)
    # overlapping masks (areas sum to 1.3) and a dropped complement (0.4): they differ
    overlap = [G, Region("object", (0, 0, 9, 9), 0.8), Region("object", (0, 0, 5, 5), 0.5)]
    scores = np.array([4.0, 6.0, 2.0])
    assert agg("area").combine(scores, overlap) == pytest.approx((0.8 * 6 + 0.5 * 2) / 1.3)
    assert agg("area", normalize="image").combine(scores, overlap) == pytest.approx(0.8 * 6 + 0.5 * 2)
    no_complement = [G, A, B]
    assert agg("area").combine(SCORES[:3], no_complement) == pytest.approx((0.25 * 6 + 0.15 * 2) / 0.4)
    assert agg("area", normalize="image").combine(SCORES[:3], no_complement) == pytest.approx(0.25 * 6 + 0.15 * 2)
    mixed = agg("mix_grained", normalize="image").combine(SCORES[:3], no_complement)
    assert mixed == pytest.approx((4 + 0.25 * 6 + 0.15 * 2) / 2)
    assert agg("mix_grained", normalize="image", local="mean").combine(SCORES[:3], no_complement) == 4.0
    with pytest.raises(Exception, match="normalize"):
        agg("area", normalize="images")


def test_mix_grained() -> None:
    assert agg("mix_grained").combine(SCORES, REGIONS) == pytest.approx((4 + 3.6) / 2)
    assert agg("mix_grained", lam=0.5).combine(SCORES, REGIONS) == pytest.approx((4 + 0.5 * 3.6) / 1.5)
    assert agg("mix_grained", local="mean").combine(SCORES, REGIONS) == pytest.approx((4 + 11 / 3) / 2)
    assert agg("mix_grained", lam=0.0).combine(SCORES, REGIONS) == pytest.approx(4.0)


def test_no_local_regions_fall_back_to_global() -> None:
    for name in ("mean", "area", "mix_grained"):
        assert agg(name).combine(np.array([5.0]), [G]) == 5.0


def test_global_region_is_not_a_local_region() -> None:
    # order does not matter: the global region is found by kind
    assert agg("mean").combine(np.array([6.0, 4.0]), [A, G]) == 6.0
    assert agg("mix_grained").combine(np.array([6.0, 4.0]), [A, G]) == 5.0


def test_mix_grained_without_global_is_an_error() -> None:
    with pytest.raises(ValueError, match="whole"):
        agg("mix_grained").combine(np.array([6.0, 2.0]), [A, B])
    with pytest.raises(ValueError):
        agg("mean").combine(np.array([]), [])
    with pytest.raises(ValueError):
        agg("area").combine(np.array([1.0]), [G, A])  # misaligned


def test_stages() -> None:
    for name in ("mean", "area", "mix_grained"):
        assert agg(name).stage == "regions"
    assert agg("ensemble").stage == "scorers"
    assert agg("mix_grained").needs_global and not agg("area").needs_global


def test_ensemble_same_range_is_the_mean() -> None:
    ens = agg("ensemble")
    assert ens.combine(np.array([3.0, 5.0, 6.0]), [(1.0, 7.0)] * 3) == pytest.approx(14 / 3)
    assert agg("ensemble", scale="native").combine(np.array([3.0, 5.0]), [(1.0, 7.0)] * 2) == 4.0
    assert agg("ensemble", weights=[3, 1]).combine(np.array([3.0, 5.0]), [(1.0, 7.0)] * 2) == 3.5


def test_ensemble_different_k() -> None:
    ranges = [(1.0, 5.0), (1.0, 7.0)]
    scores = np.array([4.0, 4.0])  # unit: 0.75 and 0.5 -> 0.625 -> on [1, 5]: 3.5
    assert agg("ensemble").combine(scores, ranges) == pytest.approx(3.5)
    assert agg("ensemble", scale="unit").combine(scores, ranges) == pytest.approx(3.5)
    # the first scorer's range is the output range
    assert agg("ensemble").combine(scores[::-1], ranges[::-1]) == pytest.approx(1 + 0.625 * 6)
    # unit on equal ranges equals the plain mean
    assert agg("ensemble", scale="unit").combine(np.array([2.0, 6.0]), [(1.0, 7.0)] * 2) == 4.0
    with pytest.raises(ValueError, match="native"):
        agg("ensemble", scale="native").combine(scores, ranges)
    with pytest.raises(ValueError, match="weights"):
        agg("ensemble", weights=[1.0]).combine(scores, ranges)
    # a probability-valued scorer (CLIP-IQA, range [0, 1]) with a 7-level one
    assert agg("ensemble").combine(np.array([0.5, 7.0]), [(0.0, 1.0), (1.0, 7.0)]) == 0.75
