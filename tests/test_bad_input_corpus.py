"""A corpus of every kind of bad input, with good images among them, through `iqa run`.

Tiny random SAM2 and Qwen2-VL models (CPU, offline) run the real code path. The run must
reach its end, and every input must come back exactly once: with a score or with an error
row naming it. Figures (inputs / completed / error rows / lost) are printed for the issue note.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sam2")

from helpers import png_bomb  # noqa: E402
from iqa_core.cli import cli  # noqa: E402
from iqa_plugins.testing import tiny_vlm  # noqa: E402
from iqa_plugins.testing.tiny_sam2 import build_tiny_sam2  # noqa: E402

SAM_SIZE = 128
# Random SAM2 weights predict low IoU and unstable masks: keep all, so degenerate images
# produce the duplicate masks that Algorithm 1 must fold into one region.
PERMISSIVE = {
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "min_mask_region_area": 0,
    "points_per_side": 2,
    "max_side": SAM_SIZE,
}


def picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), np.full((h, w), 90)], -1)
    img[h // 4 : h // 2, w // 5 : w // 2] = (230, 40, 40)
    return np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def build_corpus(root: Path) -> tuple[list[str], dict[str, str], set[str]]:
    """(CLI inputs, {input path: kind}, the paths that must be scored)."""
    folder = root / "corpus"
    folder.mkdir()
    kinds: dict[str, str] = {}

    def add(name: str, kind: str) -> Path:
        path = folder / name
        kinds[str(path)] = kind
        return path

    # good images, in every mode and shape the loader converts
    Image.fromarray(picture(72, 96, 0)).save(add("plain.png", "good"))
    Image.fromarray(picture(80, 64, 1)).save(add("photo.jpg", "good"), quality=90)
    Image.fromarray(picture(48, 64, 2)[..., 0].astype(np.uint16) * 257).save(add("deep16.png", "16-bit"))
    Image.fromarray(picture(64, 64, 3)).convert("CMYK").save(add("cmyk.jpg", "CMYK"))
    rgba = Image.fromarray(picture(40, 56, 4)).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(add("alpha.png", "RGBA"))
    Image.fromarray(picture(50, 50, 5)).convert("P").save(add("palette.gif", "palette"))
    Image.fromarray(picture(32, 48, 6)[..., 1] > 128).save(add("bilevel.tif", "1-bit"))
    Image.fromarray(picture(30, 40, 7)[..., 0].astype(np.float32) / 255).save(add("float.tif", "float"))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(picture(40, 80, 8)).save(add("rotated.jpg", "EXIF-rotated"), exif=exif.tobytes())
    # degenerate shapes
    Image.fromarray(picture(1, 1, 9)).save(add("dot.png", "1x1"))
    Image.fromarray(picture(10000, 4, 10)).save(add("tall.png", "4x10000"))
    Image.fromarray(picture(10, 1280, 11)).save(add("wide.png", "1280x10"))
    # bad files
    add("empty.png", "empty").write_bytes(b"")
    add("text.jpg", "not an image").write_text("hello, not an image\n" * 10)
    full = (folder / "plain.png").read_bytes()
    add("truncated.png", "truncated").write_bytes(full[: len(full) // 2])
    png_bomb(add("bomb.png", "decompression bomb"), 20_000, 10_000)  # 2e8 pixels > the 1.79e8 limit
    os.mkfifo(add("fifo.png", "FIFO"))
    add("dangling.png", "dangling link").symlink_to(folder / "gone.png")
    add("loop.jpg", "link loop").symlink_to(folder / "loop.jpg")
    add("zero.png", "endless device").symlink_to("/dev/zero")
    unreadable = add("unreadable.png", "unreadable")
    Image.fromarray(picture(16, 16, 12)).save(unreadable)
    unreadable.chmod(0)
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder)  # a folder link loop: not followed, not an input
    (folder / "folder.png").mkdir()  # a folder with an image name: not an input
    # a list file naming a missing file and a FIFO outside the folder
    os.mkfifo(root / "outside_fifo.png")
    kinds[str(root / "outside_fifo.png")] = "FIFO in a list file"
    kinds[str(root / "missing.png")] = "missing"
    listing = root / "more.txt"
    listing.write_text("outside_fifo.png\nmissing.png\n")
    scored = {p for p, k in kinds.items() if k in {"good", "16-bit", "CMYK", "RGBA", "palette", "1-bit", "float"}}
    scored.add(str(folder / "rotated.jpg"))
    if os.geteuid() == 0:
        kinds[str(unreadable)] = "unreadable (as root: readable)"
    return [str(folder), str(listing)], kinds, scored


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("corpus")
    models = root / "models"
    sam = build_tiny_sam2(models / "sam2", image_size=SAM_SIZE)
    qwen = tiny_vlm.build_qwen2_vl(models / "qwen2_vl")
    recipe = {
        "segmenter": {"name": "sam2", "params": {**sam, **PERMISSIVE, "device": "cpu"}},
        "regions": {"min_area": 0.01, "views": ["bbox", "whole"]},
        "standard": {"name": "word", "params": {"levels": 5}},
        "scorers": [{"name": "hf_vlm", "label": "qwen", "params": {"model": str(qwen), "device": "cpu"}}],
        "runtime": {"store": str(root / "store.sqlite"), "chunk_images": 4, "workers": 2},
    }
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    inputs, kinds, scored = build_corpus(root)
    out = root / "scores.csv"
    args = ["run", "-r", str(recipe_path), *inputs, "-o", str(out), "--details", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with out.with_name("scores.regions.csv").open(newline="", encoding="utf-8") as fh:
        regions = list(csv.DictReader(fh))
    return {"result": result, "rows": rows, "regions": regions, "kinds": kinds, "scored": scored}


def test_every_input_gets_a_score_or_an_error_row(corpus_run: dict) -> None:
    result, rows, kinds = corpus_run["result"], corpus_run["rows"], corpus_run["kinds"]
    assert result.exit_code == 1, (result.output, result.exception)  # some failed, the run finished
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths))
    completed = [r for r in rows if not r["error"]]
    errors = [r for r in rows if r["error"]]
    lost = set(kinds) - set(paths)
    print(
        f"\ncorpus: {len(kinds)} inputs, {len(completed)} completed, {len(errors)} error rows, {len(lost)} lost; "
        f"error rows: {sorted((kinds[r['path']], r['error'].rpartition(': ')[2]) for r in errors)}"
    )
    assert not lost and set(paths) == set(kinds)
    for r in completed:
        assert 1.0 <= float(r["score"]) <= 5.0, r
    for r in errors:
        assert r["error"].startswith(r["path"]) and r["score"] == "", r  # each names its file
    assert {r["path"] for r in completed} >= corpus_run["scored"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "empty file"),
        ("not an image", "not an image file"),
        ("truncated", "truncated or corrupt image"),
        ("decompression bomb", "exceeds the"),
        ("FIFO", "not a regular file but a FIFO (named pipe)"),
        ("FIFO in a list file", "not a regular file but a FIFO (named pipe)"),
        ("dangling link", "broken symbolic link"),
        ("link loop", "symbolic link loop"),
        ("endless device", "not a regular file but a character device"),
        ("missing", "file not found"),
    ],
)
def test_each_bad_file_says_what_is_wrong(corpus_run: dict, kind: str, message: str) -> None:
    (path,) = [p for p, k in corpus_run["kinds"].items() if k == kind]
    (row,) = [r for r in corpus_run["rows"] if r["path"] == path]
    assert message in row["error"], row["error"]


def test_a_one_pixel_image_is_one_region(corpus_run: dict) -> None:
    """A 1x1 image got 41 identical full-image regions, their areas summing to 41."""
    dot = [r for r in corpus_run["regions"] if r["path"].endswith("dot.png") and r["kind"] != "global"]
    assert [(r["kind"], float(r["area"])) for r in dot] == [("object", 1.0)]
