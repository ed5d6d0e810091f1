"""The sam2 segmenter on a randomly initialised hiera-tiny, loaded like a real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("sam2")

from iqa_core.errors import ModelUnavailable  # noqa: E402
from iqa_plugins.segmenters.sam2 import SAM2Segmenter, _small_components  # noqa: E402
from iqa_plugins.testing.tiny_sam2 import TINY_CONFIG, build_tiny_sam2  # noqa: E402

IMAGE_SIZE = 128
# Random weights predict low IoU and unstable masks: keep everything but exact duplicates.
PERMISSIVE = dict(
    pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.7, min_mask_region_area=20, max_side=128
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_tiny_sam2(tmp_path_factory.mktemp("sam2"), image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def segmenter(tiny: dict[str, str]) -> SAM2Segmenter:
    seg = SAM2Segmenter({**tiny, **PERMISSIVE, "device": "cpu"})
    seg.load()
    return seg


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_masks_are_boolean_at_one_size_with_the_input_aspect(segmenter: SAM2Segmenter) -> None:
    masks = segmenter.segment(noise(96, 160))
    assert masks
    assert all(m.dtype == bool for m in masks)
    assert {m.shape for m in masks} == {(77, 128)}  # 96x160 scaled to a 128-pixel long side


def test_small_input_stays_at_native_resolution(segmenter: SAM2Segmenter) -> None:
    masks = segmenter.segment(noise(60, 90))
    assert masks and {m.shape for m in masks} == {(60, 90)}


def test_large_input_is_downscaled_before_generation(segmenter: SAM2Segmenter) -> None:
    masks = segmenter.segment(noise(1500, 3000))
    assert masks and {m.shape for m in masks} == {(64, 128)}


def test_deterministic(segmenter: SAM2Segmenter) -> None:
    image = noise(96, 160, seed=3)
    first, second = segmenter.segment(image), segmenter.segment(image)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_packaged_config_with_overrides_matches_local_yaml(tiny: dict[str, str], segmenter: SAM2Segmenter) -> None:
    packaged = SAM2Segmenter(
        {
            "config": TINY_CONFIG,
            "checkpoint": tiny["checkpoint"],
            "device": "cpu",
            "overrides": [f"++model.image_size={IMAGE_SIZE}"],
            **PERMISSIVE,
        }
    )
    image = noise(96, 160, seed=5)
    expected = segmenter.segment(image)
    got = packaged.segment(image)  # loads on first use
    assert len(got) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_table2_defaults() -> None:
    p = SAM2Segmenter.Params()
    assert p.model == "facebook/sam2.1-hiera-large"
    assert (p.points_per_side, p.points_per_batch, p.pred_iou_thresh) == (8, 128, 0.9)
    assert (p.stability_score_thresh, p.stability_score_offset, p.box_nms_thresh) == (0.8, 0.7, 0.9)
    assert (p.crop_n_layers, p.crop_n_points_downscale_factor) == (0, 1.2)
    assert (p.min_mask_region_area, p.use_m2m) == (1000, False)


def test_small_region_filter_is_per_mask_and_8_connected() -> None:
    fg = np.zeros((2, 1, 8, 8), dtype=bool)
    fg[0, 0, 1, 1] = fg[0, 0, 2, 2] = True  # one diagonal island of 2 pixels
    fg[1, 0, :, :4] = True  # 32 pixels: not small
    small = _small_components(fg, max_area=2)
    assert small[0, 0].sum() == 2 and small[0, 0, 1, 1] and small[0, 0, 2, 2]
    assert not small[1].any()


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    seg = SAM2Segmenter({"config": TINY_CONFIG, "checkpoint": str(missing)})
    with pytest.raises(ModelUnavailable, match="nope.pt"):
        seg.load()


def test_mismatched_checkpoint_is_a_clear_error(tiny: dict[str, str]) -> None:
    seg = SAM2Segmenter(
        {"config": "configs/sam2.1/sam2.1_hiera_s.yaml", "checkpoint": tiny["checkpoint"], "device": "cpu"}
    )
    with pytest.raises(ModelUnavailable, match="does not match config"):
        seg.load()


def test_offline_hub_id_is_model_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="sam2.1-hiera-tiny.*checkpoint:"):
        SAM2Segmenter({"model": "facebook/sam2.1-hiera-tiny"}).load()


def test_unknown_hub_id_lists_the_known_ones() -> None:
    with pytest.raises(ModelUnavailable, match="facebook/sam2.1-hiera-large"):
        SAM2Segmenter({"model": "facebook/sam3-huge"}).load()


def test_checkpoint_needs_config() -> None:
    with pytest.raises(ValidationError, match="config"):
        SAM2Segmenter({"checkpoint": "x.pt"})


def shapes(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour noise with filled shapes (something for SAM2 to segment)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    coarse = (rng.random((4, 6, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = (x, y, x + int(rng.integers(w // 8, w // 3)), y + int(rng.integers(h // 8, h // 3)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(2) else draw.rectangle)(box, fill=fill)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(1)))


# Random weights predict low IoUs and mostly whole-image masks; these settings make each stage
# of the generator (IoU filter, stability filter, small-region filter, NMS) decide something.
FAST_CASES = {
    "keep_all": dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0, min_mask_region_area=0),
    "nms_distinct_boxes": dict(
        pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.9, mask_threshold=5.0, min_mask_region_area=5
    ),
    "filters": dict(pred_iou_thresh=0.1, stability_score_thresh=0.5, box_nms_thresh=0.9, min_mask_region_area=20),
    "table2": {},
}


@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_postprocess_keeps_exactly_the_package_masks(tiny: dict[str, str], case: str) -> None:
    """The low-resolution filter path returns the stock generator's masks, bit for bit, in order."""
    params = {**tiny, **FAST_CASES[case], "max_side": 128, "device": "cpu"}
    fast = SAM2Segmenter(params)
    stock = SAM2Segmenter({**params, "fast_postprocess": False})
    for seed, (h, w) in enumerate([(120, 160), (300, 200)]):
        image = shapes(h, w, seed)
        got, expected = fast.segment(image), stock.segment(image)
        assert len(got) == len(expected)
        assert all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, expected))
    if case == "keep_all":
        assert len(got) == 8 * 8 * 3  # every candidate of the 8x8 grid survives
    if case == "nms_distinct_boxes":
        assert len(got) > 1


def test_fast_postprocess_does_not_change_the_cache_key(tiny: dict[str, str]) -> None:
    a = SAM2Segmenter({**tiny, "fast_postprocess": True})
    b = SAM2Segmenter({**tiny, "fast_postprocess": False})
    assert a.cache_key() == b.cache_key()


def test_crop_layers_use_the_package_path(tiny: dict[str, str]) -> None:
    seg = SAM2Segmenter({**tiny, **PERMISSIVE, "crop_n_layers": 1, "device": "cpu"})
    masks = seg.segment(shapes(96, 128))
    assert masks and {m.shape for m in masks} == {(96, 128)}
