"""Reading images into RGB, bad files as ImageError, and expanding inputs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqa_core.errors import ImageError, IQAError
from iqa_core.images import expand_inputs, read_image, to_rgb


def rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    loaded = read_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (20, 40)  # width and height swapped
    top = rgb(loaded.image)[:20].mean()
    bottom = rgb(loaded.image)[20:].mean()
    assert top > 200 and bottom < 50  # left half ends up on top after a 90° CW turn


def test_grayscale_palette_cmyk_to_rgb(tmp_path: Path) -> None:
    gray = Image.fromarray(np.full((4, 5), 77, dtype=np.uint8), "L")
    out = to_rgb(gray)
    assert out.mode == "RGB" and out.size == (5, 4) and (rgb(out) == 77).all()
    pal = Image.new("P", (3, 3))
    pal.putpalette([10, 20, 30] + [0] * 765)
    assert rgb(to_rgb(pal))[0, 0].tolist() == [10, 20, 30]
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))  # no ink: white
    assert (rgb(to_rgb(cmyk)) == 255).all()
    bw = Image.new("1", (2, 2), 1)
    assert (rgb(to_rgb(bw)) == 255).all()
    # and from files
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # red
    red = rgb(read_image(path).image)
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 60


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent black -> white
    rgba.putpixel((1, 0), (0, 0, 0, 255))  # opaque black stays black
    out = rgb(to_rgb(rgba))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 0]
    half = Image.new("RGBA", (1, 1), (0, 0, 0, 128))
    assert 120 <= rgb(to_rgb(half))[0, 0, 0] <= 135
    la = Image.new("LA", (1, 1), (0, 0))
    assert rgb(to_rgb(la))[0, 0].tolist() == [255, 255, 255]
    # palette with a transparent index, through a PNG file
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = tmp_path / "pal.png"
    pal.save(path, transparency=0)
    out = rgb(read_image(path).image)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [200, 0, 0]


def test_16_bit_is_rescaled_not_clipped(tmp_path: Path) -> None:
    arr = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    out = rgb(read_image(path).image)[0, :, 0]
    assert out.tolist() == [0, 4, 128, 255]  # clipping would give [0, 255, 255, 255]


def test_truncated_jpeg_is_an_image_error(tmp_path: Path) -> None:
    arr = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(arr).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:600])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        read_image(cut)
    assert str(cut) in str(info.value)


@pytest.mark.parametrize(
    "name, content, message",
    [("empty.png", b"", "empty file"), ("text.jpg", b"hello, not an image\n" * 10, "not an image")],
)
def test_bad_files_are_image_errors_naming_the_path(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        read_image(path)
    assert str(info.value).startswith(str(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="file not found") as info:
        read_image(tmp_path / "nope.png")
    assert str(tmp_path / "nope.png") in str(info.value)
    with pytest.raises(ImageError) as info:
        read_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    assert read_image(path, max_pixels=200).size == (20, 10)
    with pytest.raises(ImageError, match="199-pixel limit") as info:
        read_image(path, max_pixels=199)
    assert str(path) in str(info.value)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG claiming ``width`` x ``height`` with no pixel data (decoding it fails)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_default_pixel_limit_is_the_documented_one(tmp_path: Path) -> None:
    """Images up to DEFAULT_MAX_PIXELS are not refused as bombs (PIL only *warns* above half)."""
    path = tmp_path / "tall.png"
    png_header_only(path, 10_000, 10_000)  # 1e8 pixels: above PIL's warning, below the limit
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value).removeprefix(f"{path}: ")
    assert "bomb" not in message and "limit" not in message
    assert message.startswith("truncated or corrupt")
    png_header_only(path, 20_000, 10_000)  # 2e8 pixels: refused
    with pytest.raises(ImageError, match="limit|bomb"):
        read_image(path)


def test_a_raised_pixel_limit_overrides_pils(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    path = tmp_path / "huge.png"
    png_header_only(path, 20_000, 10_000)  # 2e8 pixels: above PIL's own refusal threshold
    with pytest.raises(ImageError) as info:
        read_image(path, max_pixels=300_000_000)
    assert str(info.value).startswith(f"{path}: truncated or corrupt")  # decoded, not refused


def test_unexpected_decoder_failures_are_image_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL raises more than OSError on hostile files (struct.error, IndexError, ...)."""
    path = tmp_path / "odd.png"
    Image.new("RGB", (4, 4)).save(path)

    def explode(self, *args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(Image.Image, "load", explode)
    with pytest.raises(ImageError, match="corrupt") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_content_hash_is_of_the_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(a)
    b.write_bytes(a.read_bytes())
    Image.new("RGB", (4, 4), (1, 2, 4)).save(c)
    assert read_image(a).content_hash == read_image(b).content_hash != read_image(c).content_hash


# ------------------------------------------------------------------ inputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for rel in ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.tiff", "notes.txt", "sub/data.csv", "sub/e.jpeg"]:
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "sub" / "dir.png").mkdir()  # a folder with an image suffix
    return tmp_path


def test_folder_recursion_picks_image_suffixes_only(tree: Path) -> None:
    found = expand_inputs([tree])
    rel = [str(Path(p).relative_to(tree)) for p in found]
    assert rel == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.tiff", "sub/e.jpeg"]


def test_glob_keeps_image_files(tree: Path) -> None:
    found = expand_inputs([str(tree / "sub" / "**" / "*.*")])
    assert sorted(Path(p).name for p in found) == ["c.webp", "d.tiff", "e.jpeg"]  # not data.csv
    assert [Path(p).name for p in expand_inputs([str(tree / "*.jpg")])] == ["a.jpg"]


def test_list_file_with_relative_paths(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lists = tree / "lists"
    lists.mkdir()
    lst = lists / "inputs.txt"
    lst.write_text(f"# a comment\n../a.jpg\n\n  ../sub/c.webp  \n{tree / 'b.PNG'}\n../missing.jpg\n../sub/deeper\n")
    monkeypatch.chdir(tmp_path.parent)  # relative to the list, not to the working directory
    found = expand_inputs([lst])
    assert [Path(p).resolve() for p in found] == [
        (tree / "a.jpg").resolve(),
        (tree / "sub/c.webp").resolve(),
        (tree / "b.PNG").resolve(),
        (tree / "missing.jpg").resolve(),  # kept: becomes an error row
        (tree / "sub/deeper/d.tiff").resolve(),
    ]


def test_duplicates_dropped_first_wins(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    found = expand_inputs(["sub/e.jpeg", "sub", "./sub/c.webp", "sub/c.webp", "a.jpg", "*.jpg"])
    assert found == ["sub/e.jpeg", "sub/c.webp", "sub/deeper/d.tiff", "a.jpg"]


def test_explicit_file_and_missing_path_are_kept(tree: Path) -> None:
    missing = tree / "notes.md.jpg"
    assert expand_inputs([tree / "a.jpg", missing]) == [str(tree / "a.jpg"), str(missing)]
    (tree / "sub" / "data.csv").write_text("path,id\nc.webp,7\nmissing.jpg,8\n")  # a manifest now
    assert expand_inputs([tree / "sub" / "data.csv"]) == [
        str(tree / "sub" / "c.webp"),
        str(tree / "sub" / "missing.jpg"),
    ]


def test_only_missing_inputs_is_a_usage_error_for_a_run(tree: Path) -> None:
    from iqa_core.executors import run_pipeline
    from iqa_core.pipeline import Pipeline

    assert expand_inputs([tree / "imagse"]) == [str(tree / "imagse")]  # a worker's shard: an error row
    pipeline = Pipeline.from_recipe({"scorers": [{"name": "clip_iqa"}], "runtime": {"store": None}})
    with pytest.raises(IQAError, match="no images found in: .*imagse"):
        run_pipeline(pipeline, [tree / "imagse"])


def test_empty_list_file_among_other_inputs(tree: Path) -> None:
    lst = tree / "empty.lst"
    lst.write_text("# nothing here\n")
    assert expand_inputs([lst, tree / "a.jpg"]) == [str(tree / "a.jpg")]


def test_a_single_path_is_not_iterated(tree: Path) -> None:
    assert expand_inputs(str(tree / "a.jpg")) == [str(tree / "a.jpg")]  # type: ignore[arg-type]
    assert len(expand_inputs(tree / "sub")) == 3  # type: ignore[arg-type]


def test_nothing_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IQAError, match="no images found"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(IQAError, match="no images found"):
        expand_inputs([str(tmp_path / "*.png")])
    with pytest.raises(IQAError):
        expand_inputs([])
