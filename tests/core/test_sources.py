"""Inputs from manifests (.csv, .jsonl, .parquet) and URIs (fsspec), with their columns carried to the output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import fsspec
import pytest
import yaml
from click.testing import CliRunner

from helpers import quadrant_image, recipe, write_images
from iqa_core.cli import cli
from iqa_core.errors import IQAError
from iqa_core.images import content_hash, expand_inputs, iter_inputs, read_file
from iqa_core.pipeline import Pipeline
from iqa_core.sources import manifest_columns, manifest_rows

pytestmark = pytest.mark.usefixtures("test_plugins")


@pytest.fixture
def memory_images():
    """Two PNGs on fsspec's in-memory filesystem (what an object store looks like to the reader)."""
    fs = fsspec.filesystem("memory")
    uris = []
    for i in range(2):
        uri = f"memory://bucket/img{i}.png"
        with fs.open(uri, "wb") as fh:
            quadrant_image(40 + 60 * i).save(fh, format="PNG")
        uris.append(uri)
    yield uris
    for uri in uris:
        fs.rm(uri)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_manifest_names_inputs_relative_to_itself_and_keeps_its_columns(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    write_images(tmp_path / "imgs", 2)
    rows = [{"id": "a", "uri": "imgs/img00.png", "mos": 3.5}, {"id": "b", "uri": "imgs/img01.png", "mos": 1.0}]
    manifest = write_manifest(tmp_path / f"m{suffix}", rows)
    assert expand_inputs([manifest]) == [str(tmp_path / "imgs" / "img00.png"), str(tmp_path / "imgs" / "img01.png")]
    assert manifest_columns([manifest], ["path", "score"]) == ["id", "mos"]
    inputs = list(iter_inputs([manifest]))
    assert inputs[1] == (str(tmp_path / "imgs" / "img01.png"), {"id": "b", "mos": "1.0" if suffix == ".csv" else 1.0})


def test_a_manifest_without_a_path_column_or_with_a_clashing_column_is_one_line(tmp_path: Path) -> None:
    bad = write_manifest(tmp_path / "m.csv", [{"name": "x.png"}])
    with pytest.raises(IQAError, match=r"m.csv: no path column; name one of path, uri"):
        list(manifest_rows(bad))
    clash = write_manifest(tmp_path / "c.csv", [{"path": "x.png", "score": 1}])
    with pytest.raises(IQAError, match=r"c.csv: column 'score' is also an output column"):
        manifest_columns([clash], ["path", "score"])
    (tmp_path / "j.jsonl").write_text('{"path": "a.png"}\n[1]\n')
    with pytest.raises(IQAError, match=r"j.jsonl: line 2: a JSON object per line"):
        list(manifest_rows(tmp_path / "j.jsonl"))


def test_uris_are_read_through_fsspec_and_an_unreadable_one_is_an_error_row(memory_images: list[str]) -> None:
    data = read_file(memory_images[0])
    assert data[:4] == b"\x89PNG"
    inputs = [*memory_images, "memory://bucket/missing.png"]
    assert expand_inputs(inputs) == inputs  # kept as they are: never globbed or looked up on disk
    results = Pipeline.from_recipe(recipe(None)).score_many(inputs)
    assert [r.error is None for r in results] == [True, True, False]
    assert results[0].content_hash == content_hash(data)
    assert results[2].error == "memory://bucket/missing.png: not found"


def test_run_with_a_manifest_of_uris_carries_its_columns(tmp_path: Path, memory_images: list[str]) -> None:
    rows = [{"image": u, "caption": f"c{i}", "mos": i} for i, u in enumerate(memory_images)]
    rows.append({"image": "memory://bucket/gone.png", "caption": "x", "mos": 9})
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe(tmp_path / "s.sqlite")))
    res = CliRunner().invoke(cli, ["run", "-r", str(recipe_file), str(manifest), "-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 1, res.output  # one input failed
    with (tmp_path / "o.csv").open(newline="") as fh:
        out = list(csv.DictReader(fh))
    assert list(out[0]) == ["path", "caption", "mos", "score", "test_brightness", "n_regions", "error"]
    assert [(r["path"], r["caption"], r["mos"]) for r in out] == [
        (u["image"], u["caption"], str(u["mos"])) for u in rows
    ]
    assert out[0]["score"] and out[2]["error"] == "memory://bucket/gone.png: not found"


def test_a_manifest_streams_through_the_run_one_output_row_per_manifest_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are taken as the reader gets to them (never the whole manifest), and a path
    listed twice gives two rows, each with its own columns."""
    import iqa_core.sources as sources
    from iqa_core.executors import iter_rows

    images = write_images(tmp_path / "imgs", 4)
    rows = [{"path": str(images[i % 4]), "caption": f"c{i}"} for i in range(120)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    taken = []
    original = sources._rows

    def counted(path: Path):
        for row in original(path):
            taken.append(row)
            yield row

    data = recipe(tmp_path / "s.sqlite")
    data["runtime"].update(chunk_images=4, workers=1)
    monkeypatch.setattr(sources, "_rows", counted)
    out = iter_rows(Pipeline.from_recipe(data), [manifest])
    first, row = next(out)
    assert row == {"caption": "c0"} and first.path == str(images[0])
    assert 4 <= len(taken) < 30, len(taken)  # read ahead of the first result: a few chunks, not 120 rows
    rest = list(out)
    assert [r["caption"] for _, r in rest] == [f"c{i}" for i in range(1, 120)]
    assert all(res.score == first.score for res, r in rest if r["caption"][1:] in ("4", "8"))
