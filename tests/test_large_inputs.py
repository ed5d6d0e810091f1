"""Large inputs are cheap: the core resizes once to the segmenter's working size, with the
very pixels (so the very masks) the segmenter would make itself; crops stay full resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import QuadrantSegmenter, Recorder, recipe, write_images
from iqa_core.pipeline import load_recipe
from iqa_core.pipeline.segment import working_image


class _HalfSize(QuadrantSegmenter):
    """Works at half size: it must receive half-size pixels."""

    def working_size(self, size):
        return (size[0] // 2, size[1] // 2)


@pytest.mark.usefixtures("test_plugins")
def test_the_segmenter_gets_its_working_size_and_regions_keep_original_coordinates(
    tmp_path: Path, test_plugins: Recorder
) -> None:
    write_images(tmp_path / "imgs", 1)
    full = load_recipe(recipe(None)).score_many([tmp_path / "imgs"])
    data = recipe(None, segmenter={"name": f"{__name__}:_HalfSize"})
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    half = load_recipe(data).score_many([tmp_path / "imgs"])
    assert test_plugins.segmented == [(48, 64), (24, 32)]
    # the quadrant masks come back at a quarter of the working size; boxes are in original pixels
    assert [x.region.bbox for x in half[0].regions] == [
        (0, 0, 64, 48),
        (0, 0, 32, 24),
        (32, 24, 64, 48),
        (0, 0, 64, 48),
    ]
    assert half[0].score == pytest.approx(full[0].score)  # crops are cut from the full-resolution image


def test_sam2_masks_are_the_ones_it_makes_from_full_resolution(tmp_path: Path) -> None:
    pytest.importorskip("sam2")
    from iqa_plugins.segmenters.sam2 import SAM2Segmenter
    from iqa_plugins.testing.tiny_sam2 import build_tiny_sam2

    tiny = build_tiny_sam2(tmp_path / "sam2", image_size=128)
    seg = SAM2Segmenter(
        {**tiny, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "max_side": 128, "device": "cpu"}
    )
    seg.load()
    rng = np.random.default_rng(5)
    pixels = np.kron(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), np.ones((20, 20, 1), dtype=np.uint8))
    image = Image.fromarray(pixels)  # 800 x 600, blocky so there is something to segment
    small = working_image(seg, image)
    assert small.size == (128, 96)
    direct = seg.segment(pixels)
    via_core = seg.segment(np.asarray(small))
    assert direct and len(via_core) == len(direct)
    assert all(np.array_equal(a, b) for a, b in zip(direct, via_core))
    assert working_image(seg, image.resize((100, 75))).size == (100, 75)  # small images are not touched
