"""The sam2 segmenter on a randomly initialised hiera-tiny, loaded like a real checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydantic import ValidationError

if TYPE_CHECKING:
    import torch

pytest.importorskip("sam2")

from iqa_core.errors import ModelUnavailable  # noqa: E402
from iqa_plugins.segmenters import _components  # noqa: E402
from iqa_plugins.segmenters._components import component_areas, fill_small_regions  # noqa: E402
from iqa_plugins.segmenters.sam2 import SAM2Segmenter  # noqa: E402
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


def reference_areas(mask: np.ndarray) -> np.ndarray:
    """The oracle: scipy's 8-connected labelling of each (H, W) slice, one slice at a time."""
    from scipy import ndimage

    out = np.zeros(mask.shape, dtype=np.int64)
    for index in np.ndindex(mask.shape[:-2]):
        labels, _ = ndimage.label(mask[index], structure=np.ones((3, 3), dtype=bool))
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        out[index] = counts[labels]
    return out


def spiral(n: int) -> np.ndarray:
    """One 1-pixel-wide square spiral: a single component whose path covers half the slice."""
    m = np.zeros((n, n), dtype=bool)
    top, left, bottom, right = 0, 0, n - 1, n - 1
    while top <= bottom and left <= right:
        m[top, left : right + 1] = True
        m[top : bottom + 1, right] = True
        if bottom > top + 1:
            m[bottom, left : right + 1] = True
        if right > left + 2:
            m[top + 2 : bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    return m


def snake(n: int) -> np.ndarray:
    """Rows joined at alternating ends: the longest path a grid can hold."""
    m = np.zeros((n, n), dtype=bool)
    m[::2] = True
    for r in range(1, n, 2):
        m[r, n - 1 if r % 4 == 1 else 0] = True
    return m


def adversarial_masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.indices((40, 40))
    single = np.zeros((40, 40), dtype=bool)
    single[[0, 0, 39, 39, 20], [0, 39, 0, 39, 20]] = True  # single pixels, corners included
    corners = np.zeros((40, 40), dtype=bool)
    corners[10:15, 10:15] = corners[15:20, 15:20] = corners[20:25, 10:15] = True  # touch only diagonally
    stripes = np.zeros((40, 40), dtype=bool)
    stripes[:, ::2] = True
    return {
        "random": rng.random((6, 37, 45)) < 0.5,
        "random_sparse": rng.random((6, 37, 45)) < 0.35,  # near the 8-connected percolation threshold
        "checkerboard": ((yy + xx) % 2 == 0)[None],  # one component 8-connected, 800 if 4-connected
        "inverse_checkerboard": ((yy + xx) % 2 == 1)[None],
        "spiral": spiral(64)[None],
        "snake": snake(64)[None],
        "single_pixels": single[None],
        "touching_corners": corners[None],
        "stripes": stripes[None],
        "empty": np.zeros((2, 8, 8), dtype=bool),
        "full": np.ones((2, 8, 8), dtype=bool),
        "one_pixel_slices": rng.random((5, 1, 1)) < 0.5,
        "lines": rng.random((3, 1, 50)) < 0.6,
    }


@pytest.mark.parametrize("backend", ["torch", "scipy"])
@pytest.mark.parametrize("name", sorted(adversarial_masks()))
def test_component_areas_match_scipy_label(name: str, backend: str) -> None:
    import torch

    mask = adversarial_masks()[name]
    for case in (mask, ~mask):  # islands and holes
        got = component_areas(torch.from_numpy(np.ascontiguousarray(case)), backend).numpy()
        np.testing.assert_array_equal(got, reference_areas(case))


def test_component_areas_keep_leading_dimensions_apart() -> None:
    import torch

    mask = np.zeros((2, 3, 4, 4), dtype=bool)
    mask[0, 1, 0, :2] = mask[1, 2, :, 3] = True
    got = component_areas(torch.from_numpy(mask), "torch")
    assert got.shape == (2, 3, 4, 4)
    assert got[0, 1, 0, :2].tolist() == [2, 2] and got[1, 2, :, 3].tolist() == [4] * 4
    assert int((got > 0).sum()) == 6


def test_small_region_filter_fills_holes_and_drops_islands_per_mask() -> None:
    import torch

    logits = torch.full((2, 8, 8), -1.0)
    logits[0, 1, 1] = logits[0, 2, 2] = 3.0  # a diagonal island of 2 pixels
    logits[1, :, :4] = 2.0  # 32 pixels of foreground with a 1-pixel hole
    logits[1, 3, 1] = -2.0
    out = fill_small_regions(logits, threshold=0.0, max_area=2)
    assert out[0, 1, 1] == out[0, 2, 2] == -10.0  # island removed
    assert out[1, 3, 1] == 10.0  # hole filled
    untouched = torch.ones_like(out, dtype=torch.bool)
    untouched[0, 1, 1] = untouched[0, 2, 2] = untouched[1, 3, 1] = False
    assert torch.equal(out[untouched], logits[untouched])  # the 32-pixel and 28-pixel regions stay


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


def reference_postprocess(masks: torch.Tensor, orig_hw: tuple[int, int], threshold: float, area: int) -> torch.Tensor:
    """``SAM2Transforms.postprocess_masks`` as the ``sam2._C`` kernel computes it, with scipy."""
    import torch
    import torch.nn.functional as F

    logits = masks.float()
    fg = (logits > threshold).numpy()
    hole = torch.from_numpy(~fg & (reference_areas(~fg) <= area))
    island = torch.from_numpy(fg & (reference_areas(fg) <= area))
    logits = torch.where(hole, threshold + 10.0, logits)
    logits = torch.where(island, threshold - 10.0, logits)
    return F.interpolate(logits, orig_hw, mode="bilinear", align_corners=False)


def stock_generator(params: dict) -> SAM2Segmenter:
    """The package's path; its small-region filter is the kernel's when built, else the scipy oracle."""
    stock = SAM2Segmenter({**params, "fast_postprocess": False})
    stock.load()
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        transforms = stock._generator.predictor._transforms
        area = stock.params.min_mask_region_area
        if area > 0:
            transforms.postprocess_masks = lambda m, hw: reference_postprocess(m, hw, transforms.mask_threshold, area)
    return stock


# "torch" is the labelling that runs on a GPU, "auto" the one a CPU picks (scipy); keep_all has no
# small-region filter, so one backend covers it
BACKEND_CASES = [(case, "torch") for case in sorted(FAST_CASES)] + [
    (case, "auto") for case in sorted(FAST_CASES) if case != "keep_all"
]


@pytest.mark.parametrize(("case", "backend"), BACKEND_CASES)
def test_fast_postprocess_keeps_exactly_the_package_masks(
    tiny: dict[str, str], case: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The low-resolution filter path returns the stock generator's masks, bit for bit, in order,
    with the tensor labelling forced (what runs on a GPU) and with the device's choice."""
    from functools import partial

    monkeypatch.setattr(_components, "fill_small_regions", partial(fill_small_regions, backend=backend))
    params = {**tiny, **FAST_CASES[case], "max_side": 128, "device": "cpu"}
    fast = SAM2Segmenter(params)
    stock = stock_generator(params)
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
