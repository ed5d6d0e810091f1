"""Exit codes and messages that tell the user what happened: 130 interrupted, and the pixel
limit that really applies. (A dead device worker, exit 3: test_engine.)"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from test_eval_cli import _csv_dataset, _write_recipe, dataset  # noqa: F401  (a fixture)

from helpers import Recorder, recipe, write_images
from iqa_core.cli import cli
from iqa_core.errors import ImageError
from iqa_core.images import DEFAULT_MAX_PIXELS, read_image

pytestmark = pytest.mark.usefixtures("test_plugins")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_ctrl_c_exits_130_saying_what_is_stored(tmp_path: Path, test_plugins: Recorder) -> None:
    write_images(tmp_path / "imgs", 6)
    data = recipe(tmp_path / "s.sqlite", scorers=[{"name": "test_brightness", "params": {"interrupt_after": 5}}])
    data["scorers"][0]["params"]["batch_size"] = 3
    data["runtime"]["chunk_images"] = 2  # 8 views per flush, 3 calls: the 6th call is in flush 2
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(data))
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs", "-o", tmp_path / "out.csv")
    assert res.exit_code == 130
    # img00, img01, and img02, whose last views were in the 5th call (see test_resume_after_interruption)
    assert res.stderr.strip() == "interrupted: 3 results stored; rerun to resume"
    rows = (tmp_path / "out.csv").read_text().splitlines()  # the finished rows are in the output too
    assert [Path(row.split(",")[0]).name for row in rows[1:]] == ["img00.png", "img01.png", "img02.png"]
    del data["scorers"][0]["params"]["interrupt_after"]
    recipe_file.write_text(yaml.safe_dump(data))
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs", "-o", tmp_path / "out.csv")
    assert res.exit_code == 0 and "6 of 6 images scored" in res.stderr and "3 results and" in res.stderr
    # without a store nothing is kept, and the message says so
    data["scorers"][0]["params"]["interrupt_after"] = 1
    recipe_file.write_text(yaml.safe_dump(data))
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs", "--no-store")
    assert res.exit_code == 130 and "nothing is kept without a store file" in res.stderr


def test_ctrl_c_in_eval_exits_130(tmp_path: Path, dataset: Path) -> None:  # noqa: F811
    r = _write_recipe(tmp_path / "r.yaml", scorers=[{"name": "test_brightness", "params": {"interrupt_after": 1}}])
    args = ["eval", "-r", r, *_csv_dataset(dataset), "-o", tmp_path / "out", "--store", tmp_path / "s.sqlite"]
    res = invoke(*args)
    assert (
        res.exit_code == 130 and res.stderr.strip() == "interrupted: what was scored is in the store; rerun to resume"
    )
    res = invoke(*args[:-2], "--no-store")
    assert res.exit_code == 130 and res.stderr.strip() == "interrupted: nothing is kept with --no-store"


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` and holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(20_000, 10_000), (50_000, 50_000)], ids=["over-ours", "over-PILs-too"])
def test_a_bomb_is_refused_citing_the_limit_that_applies(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "bomb.png"
    _png_header(path, *size)
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and f"the {DEFAULT_MAX_PIXELS}-pixel limit" in message
    assert "runtime.max_pixels" in message and "357913940" not in message
