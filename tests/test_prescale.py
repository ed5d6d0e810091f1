"""``regions.prescale``: JPEGs decode reduced (DCT draft) and views shrink to each scorer's input
size. Off by default, and then every view is cut from the full decode, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import BrightnessScorer, QuadrantSegmenter, recipe
from iqa_core.api import Region
from iqa_core.errors import RecipeError
from iqa_core.images import read_image
from iqa_core.pipeline import load_recipe
from iqa_core.pipeline.views import Views
from iqa_core.recipe import resolve
from iqa_core.regions import crop_view, encode_rle, reduced_view, reduction

SEEN: list[tuple[str, np.ndarray]] = []  # (view key, pixels) each _Sized scorer saw


class _Sized(BrightnessScorer):
    """Sees views at 48 x 40 (like a fixed-size vision processor); records what it was given."""

    def input_size(self, size):
        return (48, 40)

    def score(self, views, standard):
        SEEN.extend((v.key, np.asarray(v.image)) for v in views)
        return super().score(views, standard)


class _Small(QuadrantSegmenter):
    """Works with its long side at 128 pixels, as SAM2 does at 1024."""

    def working_size(self, size):
        scale = 128 / max(size)
        return (round(size[0] * scale), round(size[1] * scale))


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Smooth colour blobs plus grain: a JPEG-like picture, not a flat grey."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    grain = rng.normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(coarse, np.float64) + grain, 0, 255).astype(np.uint8))


def _recipe(store: Path | None, prescale=None, views=("bbox", "whole")) -> dict:
    data = recipe(store, segmenter={"name": f"{__name__}:_Small"}, scorers=[{"name": f"{__name__}:_Sized"}])
    data["regions"]["views"] = list(views)
    if prescale is not None:
        data["regions"]["prescale"] = prescale
    data["runtime"]["allow_imports"] = True  # this test module is not an installed distribution
    return data


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "imgs" / "big.jpg"
    path.parent.mkdir()
    _photo((1024, 768)).save(path, quality=92)
    return path


@pytest.fixture(autouse=True)
def _fresh() -> None:
    SEEN.clear()


@pytest.mark.usefixtures("test_plugins")
def test_off_by_default_every_view_is_cut_from_the_full_decode(jpeg: Path) -> None:
    pipe = load_recipe(_recipe(None))
    assert pipe.key == load_recipe(_recipe(None, prescale=False)).key
    result = pipe.score_many([jpeg])[0]
    assert pipe.budget_peak == 4 * 1024 * 768
    full = np.asarray(Image.open(jpeg).convert("RGB"))
    boxes = {f"bbox:{','.join(map(str, r.region.bbox))}": r.region.bbox for r in result.regions}
    assert len(SEEN) == len(result.regions) == 4
    for key, pixels in SEEN:
        x0, y0, x1, y1 = boxes.get(key, (0, 0, 1024, 768))
        assert np.array_equal(pixels, full[y0:y1, x0:x1]), key


@pytest.mark.usefixtures("test_plugins")
def test_on_the_jpeg_decodes_reduced_and_views_shrink_no_lower_than_the_input_size(jpeg: Path) -> None:
    pipe = load_recipe(_recipe(None, prescale=True))
    result = pipe.score_many([jpeg])[0]
    assert pipe.budget_peak == 4 * 128 * 96  # the byte budget holds what the JPEG decodes to
    assert result.error is None and result.size == (1024, 768)  # sizes and boxes stay the image's own
    assert [r.region.bbox for r in result.regions] == [
        (0, 0, 1024, 768),
        (0, 0, 512, 384),
        (512, 384, 1024, 768),
        (0, 0, 1024, 768),
    ]
    # the segmenter needs 128 x 96 and the scorer 48 x 40: the JPEG decodes at 1/8, 128 x 96;
    # each view is then reduced by the largest factor that keeps 48 x 40: 2 for the whole frame, 1 for a quadrant
    sizes = sorted(pixels.shape[1::-1] for _, pixels in SEEN)
    assert sizes == [(64, 48), (64, 48), (64, 48), (64, 48)]
    assert all(key.endswith("@prescale/8") for key, _ in SEEN)
    full = np.asarray(Image.open(jpeg).convert("RGB").reduce(16), np.float64)
    whole = next(pixels for key, pixels in SEEN if key.startswith("whole"))
    assert np.abs(whole - full).mean() < 4  # the same picture, at a sixteenth


def test_a_long_side_keeps_more_of_the_jpeg(jpeg: Path) -> None:
    views = Views("bbox", 0, 512)
    least = views.least_decode(_Small(), [_Sized()])
    assert least is not None and least((1024, 768)) == (512, 384)
    loaded = read_image(jpeg, least=least)
    assert (loaded.image.size, loaded.reduced, loaded.size) == ((512, 384), 2, (1024, 768))
    assert Views("bbox", 0, False).least_decode(_Small(), [_Sized()]) is None
    # a scorer that cannot tell its input size keeps the full decode
    assert Views("bbox", 0, True).least_decode(_Small(), [BrightnessScorer()])((1024, 768)) == (1024, 768)
    assert Views("bbox", 0, True).least_decode(None, [_Sized()])((1024, 768)) == (48, 40)


@pytest.mark.usefixtures("test_plugins")
def test_stored_rows_are_never_shared_between_prescale_on_and_off(tmp_path: Path, jpeg: Path) -> None:
    # True decodes this JPEG at 1/8, 512 (a long side) at 1/2: other pixels again
    for i, (first, second) in enumerate(((False, True), (True, False), (True, 512))):
        store = tmp_path / f"s{i}.sqlite"
        load_recipe(_recipe(store, prescale=first)).score_many([jpeg])
        again = load_recipe(_recipe(store, prescale=second))
        again.score_many([jpeg])
        assert again.stats["views_cached"] == 0 and again.stats["views_scored"] == 4
        assert again.stats["segmenter_calls"] == 1  # masks of a reduced decode are other masks
        same = load_recipe(_recipe(store, prescale=second))
        same.score_many([jpeg])
        assert same.stats["views_scored"] == same.stats["segmenter_calls"] == 0


@pytest.mark.usefixtures("test_plugins")
def test_a_png_is_decoded_in_full_and_its_views_still_shrink(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _photo((512, 384)).save(path)
    result = load_recipe(_recipe(None, prescale=True, views=("mask", "whole"))).score_many([path])[0]
    assert result.error is None
    full = Image.open(path).convert("RGB")
    whole = next(pixels for key, pixels in SEEN if key == "whole@prescale/1")
    assert np.array_equal(whole, np.asarray(full.reduce(9)))  # min(512 // 48, 384 // 40) = 9
    masked = [pixels for key, pixels in SEEN if key.startswith("mask:")]
    assert masked and all(p.shape[1] >= 48 and p.shape[0] >= 40 for p in masked)


def test_an_exif_rotated_jpeg_decodes_reduced_and_upright(tmp_path: Path) -> None:
    stored = _photo((1024, 512))
    pixels = np.asarray(stored).copy()
    pixels[:64, :, :] = (255, 0, 0)  # a red band along the stored top: the upright image's right side
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    loaded = read_image(path, least=lambda size: (size[0] // 4, size[1] // 4))
    assert (loaded.size, loaded.image.size, loaded.reduced) == ((512, 1024), (128, 256), 4)
    upright = np.asarray(loaded.image, np.float64)
    assert upright[:, -12:, 0].mean() > 200 and upright[:, -12:, 1].mean() < 60  # the band is on the right
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB").reduce(4), np.float64)
    assert np.abs(upright - expected).mean() < 4


def test_a_failing_size_hook_is_not_reported_as_a_corrupt_image(jpeg: Path) -> None:
    def broken(size):
        raise ZeroDivisionError("a plugin's bug")

    with pytest.raises(ZeroDivisionError):
        read_image(jpeg, least=broken)


def test_off_it_is_left_out_of_the_recipe_so_existing_recipe_keys_stay(test_plugins) -> None:
    from iqa_core.executors.placement import worker_recipe

    assert "prescale" not in load_recipe(_recipe(None)).recipe.model_dump(mode="json")["regions"]
    keys = set()
    for prescale in (False, True, 3000):
        pipe = load_recipe(_recipe(None, prescale=prescale))
        keys.add(pipe.key)
        assert resolve(worker_recipe(pipe, None)).recipe.regions.prescale == prescale  # workers get it too
    assert len(keys) == 3


@pytest.mark.parametrize("bad", ["maybe", 0, -5, 2.5, None])
def test_a_bad_prescale_is_one_line_naming_the_field(bad) -> None:
    with pytest.raises(RecipeError) as err:
        resolve({"scorers": [{"name": "clip_iqa"}], "regions": {"prescale": bad}})
    assert str(err.value).count("\n") == 0
    assert str(err.value).startswith("<recipe>: regions.prescale: give false, true or a long side")


def test_reduced_views_are_the_crop_reduced_by_the_largest_factor_that_keeps_the_input_size() -> None:
    image = _photo((300, 200))
    box = Region("object", (10, 20, 250, 190), 0.5)
    least = lambda size: (48, 40)  # noqa: E731
    assert reduction((240, 170), least) == 4  # 240 // 48 = 5, 170 // 40 = 4
    assert reduction((240, 170), least, min_side=60) == 2
    assert reduction((240, 170), lambda size: None) == 1
    view = reduced_view(image, box, "bbox", 0, least)
    assert np.array_equal(np.asarray(view), np.asarray(image.crop(box.bbox).reduce(4)))
    assert view.size == (60, 43)  # rounded up: the last block is the mean of what is left
    assert reduced_view(image, box, "whole", 0, least).size == (60, 40)  # 300 // 48 = 6, 200 // 40 = 5
    thin = Region("object", (0, 0, 300, 20), 0.1)
    assert reduced_view(image, thin, "bbox", 32, least).size == crop_view(image, thin, "bbox", 32).size == (480, 32)


def test_a_reduced_decode_maps_boxes_to_its_own_pixels(jpeg: Path) -> None:
    loaded = read_image(jpeg, least=lambda size: (250, 180))  # 1/4: 256 x 192
    views = Views("bbox", 0)
    view = views.cut(loaded, Region("object", (100, 50, 903, 767), 0.5), ("", "", "", ""))
    assert view.image.size == (201, 180)  # (25, 12, 226, 192): rounded out
    whole = views.cut(loaded, Region("object", (0, 0, 1024, 768), 1.0), ("", "", "", ""))
    assert whole.image is loaded.image  # the whole frame is the image itself, as at full size


def test_clip_iqa_tells_its_input_size() -> None:
    clip_iqa = pytest.importorskip("iqa_plugins.scorers.clip_iqa")
    scorer = clip_iqa.CLIPIQAScorer({"max_side": 64})
    assert scorer.input_size((640, 320)) == (64, 32)
    assert scorer.input_size((50, 40)) == (50, 40)
    assert scorer.input_size((320, 16)) == (640, 32)  # lifted to one RN50 feature cell
    assert clip_iqa.CLIPIQAScorer().input_size((4000, 3000)) == (4000, 3000)  # native resolution
    for size in ((640, 320), (50, 40), (320, 16)):
        assert scorer._resize(Image.new("RGB", size)).size == scorer.input_size(size)


@pytest.mark.parametrize("prescale", [False, True])
@pytest.mark.parametrize("mode", ["bbox", "mask"])
def test_the_size_batching_sorts_by_is_the_size_cut(jpeg: Path, prescale: bool, mode: str) -> None:
    views = Views(mode, 32, prescale)
    loaded = read_image(jpeg, least=views.least_decode(_Small(), [_Sized()]))
    mask = np.zeros((96, 128), dtype=bool)
    mask[10:90, 3:40] = True
    regions = [
        Region("global", (0, 0, 1024, 768), 1.0),
        Region("object", (24, 80, 320, 720), 0.2, encode_rle(mask)),
        Region("object", (0, 0, 1024, 768), 1.0, encode_rle(np.ones((96, 128), dtype=bool))),
        Region("object", (500, 10, 1000, 30), 0.01, encode_rle(mask)),  # thin: upscaled to 32
    ]
    for region in regions:
        cut = views.cut(loaded, region, ("", "", "", ""), _Sized()).image.size
        assert views.size(loaded, region, _Sized()) == cut, region


class _SizedOnceLoaded(_Sized):
    """Knows its input size only once loaded, as the MLLM scorers (from their processors) do."""

    loaded = False

    def load(self, standard) -> None:
        super().load(standard)
        self.loaded = True

    def input_size(self, size):
        return super().input_size(size) if self.loaded else None


def test_a_scorer_that_knows_its_input_size_once_loaded_still_gets_a_reduced_decode(jpeg: Path) -> None:
    data = _recipe(None, prescale=True)
    data["scorers"] = [{"name": f"{__name__}:_SizedOnceLoaded"}]
    load_recipe(data).score_many([jpeg])
    assert SEEN and all(key.endswith("@prescale/8") for key, _ in SEEN)  # 1024x768 -> 128x96, as with _Sized
