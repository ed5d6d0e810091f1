"""The store: schema version, damaged files and rows, read-only files, failed writes.

Every failure of the store file is one line naming it and what to do (exit 2); a damaged
row is recomputed and overwritten, and counted; a failed write stops the run with the
number of results already saved, never as an image's "segmentation failed".
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helpers import Recorder, recipe, write_images
from iqa_core.cli import cli
from iqa_core.pipeline import load_recipe
from iqa_core.store import SCHEMA_VERSION, Store, StoreError

pytestmark = pytest.mark.usefixtures("test_plugins")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def filled(tmp_path: Path, test_plugins: Recorder) -> dict[str, Any]:
    """A store holding one complete run over 3 images, and the recipe file that made it."""
    write_images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe(store)))
    pipe = load_recipe(recipe_file)
    first = pipe.score_many([tmp_path / "imgs"])
    pipe.store.close()  # its WAL is folded into the file
    test_plugins.reset()
    return {"store": store, "recipe": recipe_file, "images": tmp_path / "imgs", "scores": [r.score for r in first]}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ---------------------------------------------------------------- schema version and layout


def test_a_new_store_records_its_schema_version(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1


def test_an_unversioned_store_of_this_layout_is_adopted(filled: dict[str, Any]) -> None:
    """Stores written before versions were recorded (user_version 0) keep working."""
    with sqlite3.connect(filled["store"]) as db:
        db.execute("PRAGMA user_version=0")
    pipe = load_recipe(filled["recipe"])
    assert [r.score for r in pipe.score_many([filled["images"]])] == filled["scores"]
    assert pipe.stats["results_cached"] == 3
    with sqlite3.connect(filled["store"]) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_another_schema_version_is_refused(filled: dict[str, Any]) -> None:
    with sqlite3.connect(filled["store"]) as db:
        db.execute("PRAGMA user_version=7")
    with pytest.raises(StoreError, match=r"has schema version 7, this iqa uses version 1: move it away"):
        Store(filled["store"])
    res = invoke("run", "-r", filled["recipe"], filled["images"])
    line = one_line(res.stderr)
    assert res.exit_code == 2 and str(filled["store"]) in line and "--store elsewhere" in line


def test_a_sqlite_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE results (id INTEGER, value TEXT)")
    write_images(tmp_path / "imgs", 1)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe(other)))
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs")
    line = one_line(res.stderr)
    assert res.exit_code == 2
    assert f"store {other} is not an iqa store" in line and "move it away" in line
    with sqlite3.connect(other) as db:  # left as it was
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("results",)]


def test_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoreError, match=r"^store .*folder: cannot open it \(.*\): use --store elsewhere$"):
        Store(tmp_path / "folder")


def test_garbage_inside_the_file_is_one_line(filled: dict[str, Any]) -> None:
    data = bytearray(filled["store"].read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page after the schema page
    filled["store"].write_bytes(bytes(data))
    res = invoke("run", "-r", filled["recipe"], filled["images"])
    line = one_line(res.stderr)
    assert res.exit_code == 2
    assert f"store {filled['store']} is damaged" in line and "move it away" in line and "--store" in line


# ---------------------------------------------------------------------------- damaged rows


def _corrupt(store: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(store) as db:
        return db.execute(sql, args).rowcount


def test_damaged_rows_are_recomputed_overwritten_and_counted(filled: dict[str, Any], test_plugins: Recorder) -> None:
    store = filled["store"]
    _corrupt(store, "DELETE FROM results")  # so the view scores and masks are read back
    with sqlite3.connect(store) as db:
        (probs,) = db.execute("SELECT probs FROM view_scores LIMIT 1").fetchone()
    n = len(json.loads(probs))
    assert _corrupt(store, "UPDATE view_scores SET probs=? WHERE rowid=1", json.dumps([float("nan")] * n)) == 1
    assert _corrupt(store, "UPDATE view_scores SET probs=? WHERE rowid=2", json.dumps([0.5] * n)) == 1  # sum != 1
    assert _corrupt(store, "UPDATE view_scores SET level_values='[1, 2' WHERE rowid=3") == 1  # not JSON
    with sqlite3.connect(store) as db:
        (masks,) = db.execute("SELECT masks FROM masks WHERE rowid=1").fetchone()
    rles = json.loads(masks)
    rles[0]["counts"] = rles[0]["counts"][:-1] + ("1" if rles[0]["counts"][-1] != "1" else "2")  # garbage RLE
    assert _corrupt(store, "UPDATE masks SET masks=? WHERE rowid=1", json.dumps(rles)) == 1

    pipe = load_recipe(filled["recipe"])
    results = pipe.score_many([filled["images"]])
    assert [r.score for r in results] == pytest.approx(filled["scores"])
    assert pipe.stats["store_rows_repaired"] == 4
    assert len(test_plugins.segmented) == 1  # the image whose masks were damaged, only
    # the same masks give the same views: only the three damaged view rows were scored again
    assert pipe.stats["views_scored"] == 3 and pipe.stats["views_cached"] == 9
    again = load_recipe(filled["recipe"])  # the store now holds good rows: nothing to repair
    _corrupt(store, "DELETE FROM results")
    again.score_many([filled["images"]])
    assert again.stats["store_rows_repaired"] == 0 and again.stats["views_scored"] == 0


def test_a_damaged_result_row_is_recomputed_with_a_warning(filled: dict[str, Any]) -> None:
    store = filled["store"]
    assert _corrupt(store, "UPDATE results SET regions='[{\"kind\": ' WHERE rowid=1") == 1  # bad JSON
    assert _corrupt(store, "UPDATE results SET scorer_scores=? WHERE rowid=2", '{"test_brightness": NaN}') == 1
    res = invoke("run", "-r", filled["recipe"], filled["images"], "-o", filled["store"].parent / "out.csv")
    assert res.exit_code == 0, res.output
    assert "1 results and" in res.stderr  # the third came from the store, two were recomputed
    assert f"warning: 2 damaged rows of store {store}" in res.stderr and "recomputed and overwritten" in res.stderr
    scores = [float(line.split(",")[1]) for line in (store.parent / "out.csv").read_text().splitlines()[1:]]
    assert scores == pytest.approx(filled["scores"])
    with Store(store) as s:
        rows = s.db.execute("SELECT recipe, image FROM results").fetchall()
        assert len(rows) == 3 and all(s.get_result(*row) is not None for row in rows) and s.repaired == 0


GOOD_REGION = {"kind": "global", "bbox": [0, 0, 4, 4], "area": 1.0, "rle": None, "scores": {"s": 2.0}}


@pytest.mark.parametrize(
    "column, value",
    [
        ("score", None),
        ("score", "high"),
        ("scorer_scores", "[2.0]"),
        ("scorer_scores", '{"s": Infinity}'),
        ("regions", json.dumps([{**GOOD_REGION, "scores": [2.0]}])),
        ("regions", json.dumps([{**GOOD_REGION, "bbox": [0, 0, 4]}])),
        ("regions", json.dumps([{**GOOD_REGION, "area": "big"}])),
        ("regions", json.dumps([{**GOOD_REGION, "kind": None}])),
        ("regions", json.dumps({"0": GOOD_REGION})),
        ("width", 0),
        ("height", 2.5),
    ],
)
def test_a_result_row_that_is_not_what_was_written_reads_as_missing(column: str, value: object) -> None:
    with Store(None) as store:
        store.put_result("r", "img", 2.0, {"s": 2.0}, [GOOD_REGION], (4, 4))
        assert store.get_result("r", "img") == {
            "score": 2.0,
            "scorer_scores": {"s": 2.0},
            "regions": [GOOD_REGION],
            "size": (4, 4),
        }
        store.db.execute(f"UPDATE results SET {column}=?", (value,))
        assert store.get_result("r", "img") is None and store.repaired == 1


def test_rle_that_does_not_decode_to_its_size_is_rejected(tmp_path: Path) -> None:
    import numpy as np

    from iqa_core.regions import encode_rle

    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 2:5] = True
    good = encode_rle(mask)
    with Store(None) as store:
        bad = [
            {**good, "size": [8, 6]},  # counts sum to 48, but not this image's masks' size
            {**good, "counts": ""},  # pycocotools "decodes" this into uninitialised memory
            {**good, "counts": "0"},
            {**good, "size": [6, 9]},
            {"size": [6, 8]},
        ]
        for i, rle in enumerate(bad):
            store.put_masks(f"img{i}", "seg", [good, rle])
            assert store.get_masks(f"img{i}", "seg") is None, rle
        store.put_masks("ok", "seg", [good])
        assert store.get_masks("ok", "seg") == [good]
        assert store.repaired == len(bad)


def test_rle_runs_are_read_as_pycocotools_writes_them() -> None:
    import numpy as np

    from iqa_core.regions import encode_rle
    from iqa_core.store import _BadRow, _rle_runs, _rles

    rng = np.random.default_rng(1)
    masks = []
    for trial in range(200):
        mask = rng.random(rng.integers(1, 40, 2)) < rng.random()
        if trial % 5 == 0:
            mask[:] = trial % 2 == 0
        masks.append(mask)
    totals, ok = _rle_runs([encode_rle(m)["counts"] for m in masks])  # all at once
    assert ok and totals.tolist() == [m.size for m in masks]
    for mask in masks[:40]:  # alone, and with a run made zero or negative by one changed character
        counts = encode_rle(mask)["counts"]
        assert _rle_runs([counts]) == ([mask.size], True)
        if len(counts) > 3:  # flip one character's sign bit: some run changes, so the total does
            bad = counts[:3] + chr(((ord(counts[3]) - 48) ^ 0x10) + 48) + counts[4:]
            with pytest.raises(_BadRow):
                _rles([{"size": list(mask.shape), "counts": bad}])


# ----------------------------------------------------------------------------- read-only


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make a path read-only by its mode bits; as root (who may write anyway) ``os.access`` follows them."""

    def make(*paths: Path) -> None:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        if os.geteuid() == 0:
            real = os.access

            def access(path: Any, mode: int, **kwargs: Any) -> bool:
                if mode & os.W_OK and Path(path).resolve() in {p.resolve() for p in paths}:
                    return False
                return real(path, mode, **kwargs)

            monkeypatch.setattr(os, "access", access)

    yield make


@pytest.mark.parametrize("folder_too", [False, True], ids=["file", "file-and-folder"])
def test_a_read_only_store_is_read_and_refuses_writes_clearly(
    filled: dict[str, Any], read_only: Any, test_plugins: Recorder, folder_too: bool
) -> None:
    store = filled["store"]
    folder = store.parent / "ro"
    folder.mkdir()
    moved = folder / store.name
    store.rename(moved)
    recipe_file = folder.parent / "ro.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe(moved)))
    read_only(moved, *([folder] if folder_too else []))
    try:
        res = invoke("run", "-r", recipe_file, filled["images"], "-o", folder.parent / "out.csv")
        assert res.exit_code == 0, res.output
        assert "3 of 3 images scored" in res.stderr and "3 results and 0 view scores came from the store" in res.stderr
        assert test_plugins.views == []
        write_images(folder.parent / "more", 1, start=7)
        res = invoke("run", "-r", recipe_file, folder.parent / "more")
        line = one_line(res.stderr)
        assert res.exit_code == 2
        assert f"store {moved} is read-only" in line and "stored results can be read" in line
        assert "--store elsewhere" in line
    finally:
        folder.chmod(0o755)
        moved.chmod(0o644)


# --------------------------------------------------------------------------- failed writes


class _FullDisk:
    """A connection whose INSERTs fail as on a full disk once ``allowed`` of them have succeeded."""

    def __init__(self, db: sqlite3.Connection, table: str, allowed: int) -> None:
        self._db, self._table, self._allowed = db, table, allowed

    def _check(self, sql: str) -> None:
        if sql.startswith(f"INSERT OR REPLACE INTO {self._table}"):
            if self._allowed <= 0:
                raise sqlite3.OperationalError("database or disk is full")
            self._allowed -= 1

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.executemany(sql, *args)

    def __enter__(self) -> Any:
        return self._db.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._db.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _fill_disk(monkeypatch: pytest.MonkeyPatch, table: str, allowed: int) -> None:
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _FullDisk(connect(*a, **k), table, allowed))


def test_a_full_disk_at_the_mask_write_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_plugins: Recorder
) -> None:
    write_images(tmp_path / "imgs", 4)
    recipe_file = tmp_path / "r.yaml"
    data = recipe(tmp_path / "s.sqlite")
    data["runtime"]["chunk_images"] = 1
    recipe_file.write_text(yaml.safe_dump(data))
    _fill_disk(monkeypatch, "masks", allowed=2)
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs", "-o", tmp_path / "out.csv")
    line = one_line(res.stderr)
    assert res.exit_code == 2 and "segmentation failed" not in res.stderr
    assert line == f"error: store {tmp_path / 's.sqlite'}: disk full; 2 results saved, rerun resumes " + (
        "(free some space, or use --store elsewhere)"
    )
    assert len(test_plugins.segmented) == 3  # it stopped at the first failed write
    monkeypatch.undo()
    test_plugins.reset()
    res = invoke("run", "-r", recipe_file, tmp_path / "imgs", "-o", tmp_path / "out.csv")
    assert res.exit_code == 0 and "2 results and" in res.stderr  # the rerun resumed
    assert len(test_plugins.segmented) == 2  # the images after the failed write


def test_a_full_disk_at_the_result_write_counts_what_was_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "imgs", 5)
    _fill_disk(monkeypatch, "results", allowed=3)
    pipe = load_recipe(recipe(tmp_path / "s.sqlite"))
    with pytest.raises(StoreError, match=r"s\.sqlite: disk full; 3 results saved, rerun resumes"):
        pipe.score_many([tmp_path / "imgs"])


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_real_write_failure_is_one_line(tmp_path: Path) -> None:
    """A file-size limit makes SQLite's own writes fail (EFBIG), as a full disk does (ENOSPC)."""
    write_images(tmp_path / "imgs", 40)
    recipe_file = tmp_path / "r.yaml"
    data = recipe(tmp_path / "s.sqlite")
    data["runtime"]["chunk_images"] = 1
    recipe_file.write_text(yaml.safe_dump(data))
    script = (
        "import sys; from helpers import BrightnessScorer, QuadrantSegmenter; from iqa_core import registry\n"
        "registry.register('scorers', 'test_brightness', BrightnessScorer)\n"
        "registry.register('segmenters', 'test_quadrants', QuadrantSegmenter)\n"
        "from iqa_core.cli import cli; cli(sys.argv[1:])\n"
    )

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-c", script, "run", "-r", str(recipe_file), str(tmp_path / "imgs")],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
        timeout=300,
    )
    line = one_line(proc.stderr)
    assert proc.returncode == 2
    assert line.startswith(f"error: store {tmp_path / 's.sqlite'}: ") and line.endswith(" results saved, rerun resumes")
    saved = int(line.split("; ")[-1].split()[0])
    assert 0 < saved < 40
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= saved
