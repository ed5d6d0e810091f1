"""Inputs that are not regular image files: refused at once, each as its own error row."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import iqa_core
from helpers import png_bomb, recipe, write_images
from iqa_core.errors import ImageError, IQAError
from iqa_core.images import expand_inputs, read_image

pytestmark = pytest.mark.usefixtures("test_plugins")
TESTS = Path(__file__).parents[1]


def finishes(fn: Callable[[], object], fifo: Path, timeout: float = 10.0) -> object:
    """``fn()``'s result or exception; fails (and unblocks the reader) if it hangs on ``fifo``."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a writer that closes: the read ends
        thread.join(timeout)
        pytest.fail(f"reading {fifo} hung for {timeout} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError) as info:
        finishes(lambda: read_image(fifo), fifo)
    assert str(info.value) == f"{fifo}: not a regular file but a FIFO (named pipe)"


def test_a_fifo_in_a_list_file_is_an_error_row(tmp_path: Path) -> None:
    (good,) = write_images(tmp_path / "imgs", 1)
    fifo = tmp_path / "imgs" / "pipe.jpg"
    os.mkfifo(fifo)
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{good}\n{fifo}\n")
    pipe = iqa_core.load_recipe(recipe(None))
    results = finishes(lambda: pipe.score_many([listing]), fifo)
    assert [r.path for r in results] == [str(good), str(fifo)]  # type: ignore[union-attr]
    assert results[0].error is None and "FIFO" in results[1].error  # type: ignore[index]


def test_devices_are_refused_before_reading(tmp_path: Path) -> None:
    """``/dev/zero`` is endless: reading it used to fill the memory."""
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageError, match="zero.png: not a regular file but a character device$"):
        read_image(link)


def test_folder_scans_keep_what_they_cannot_read(tmp_path: Path) -> None:
    """Dangling links, link loops and FIFOs with image names used to vanish from a folder scan."""
    folder = tmp_path / "imgs"
    write_images(folder, 2)
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    os.mkfifo(folder / "fifo.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "to_parent").symlink_to(folder)  # a folder link loop: not followed
    (folder / "notes.txt").write_text("not an image name: not an input")
    found = [Path(p).name for p in expand_inputs([folder])]
    assert found == ["dangling.png", "fifo.png", "img00.png", "img01.png", "loop.jpg"]
    pipe = iqa_core.load_recipe(recipe(None))
    errors = {Path(r.path).name: r.error for r in pipe.score_many([folder])}
    assert errors["img00.png"] is None and errors["img01.png"] is None
    assert errors["dangling.png"] == f"{folder / 'dangling.png'}: broken symbolic link (to {folder / 'gone.png'})"
    assert errors["loop.jpg"] == f"{folder / 'loop.jpg'}: symbolic link loop"
    assert errors["fifo.png"] == f"{folder / 'fifo.png'}: not a regular file but a FIFO (named pipe)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file and folder")
def test_unreadable_files_and_folders_are_error_rows(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_images(folder, 1)
    locked = folder / "locked"
    write_images(locked, 1)
    (folder / "secret.png").write_bytes(b"x")
    (folder / "secret.png").chmod(0)
    locked.chmod(0)
    try:
        results = iqa_core.load_recipe(recipe(None)).score_many([folder])
    finally:
        locked.chmod(0o755)
    errors = {Path(r.path).name: r.error for r in results}
    assert errors["img00.png"] is None
    assert errors["locked"] == f"{locked}: cannot read file: Permission denied"
    assert errors["secret.png"] == f"{folder / 'secret.png'}: cannot read file: Permission denied"


def test_an_unreadable_list_file_is_a_usage_error(tmp_path: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_bytes(b"caf\xe9.png\n")
    with pytest.raises(IQAError, match=f"list file {listing}: cannot read: not UTF-8 text"):
        expand_inputs([listing])


MEMORY_SCRIPT = """
import resource, sys
import iqa_core
from helpers import recipe

pipe = iqa_core.load_recipe(recipe(None, segmenter={"name": "whole"}, scorers=[{"name": "helpers:BrightnessScorer"}],
                                   runtime={"store": None, "workers": 1, "allow_imports": True}))
pipe.score_many([sys.argv[1]])  # threads, imports and models set up before the limit
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 320 * 2**20, resource.RLIM_INFINITY))
for r in pipe.score_many(sys.argv[1:]):
    print(r.path, "|", r.error)
"""


def test_files_too_large_for_memory_are_their_own_error_rows(tmp_path: Path) -> None:
    """A read that raised MemoryError used to end the whole run; a decode that does is its row too."""
    a, b = write_images(tmp_path / "imgs", 2)
    huge = tmp_path / "imgs" / "huge.png"
    with huge.open("wb") as f:
        f.truncate(4 * 2**30)  # sparse: no disk used, but 4 GiB to read
    dense = tmp_path / "imgs" / "dense.png"
    png_bomb(dense, 14_000, 12_000)  # under the pixel limit; its RGB needs 504 MB
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(a), str(huge), str(dense), str(b)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split(" | ") for line in run.stdout.splitlines()]
    assert rows == [
        [str(a), "None"],
        [str(huge), f"{huge}: too large to read into memory"],
        [str(dense), f"{dense}: too large to decode in memory"],
        [str(b), "None"],
    ]
