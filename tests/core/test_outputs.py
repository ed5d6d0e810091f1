"""Result files are streamed: valid after every row, and a write killed part way keeps every row before it.

The eval files (predictions, reports, figures) are still replaced whole or not at all.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from iqa_core.api import ImageResult, Region, RegionScore
from iqa_core.outputs import ResultWriter, replacing, write_results


class Killed(BaseException):
    """Stands for the process dying mid-write (not an Exception: nothing may swallow it)."""


def results(n: int, score: float = 3.0) -> list[ImageResult]:
    regions = [RegionScore(0, Region("global", (0, 0, 4, 4), 1.0), {"s": score})]
    return [ImageResult(f"img{i}.png", score + i, {"s": score + i}, regions, f"h{i}", (4, 4)) for i in range(n)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_finished_row_is_in_a_valid_file_while_the_run_goes_on(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow.parquet")
    out = tmp_path / f"scores{suffix}"
    writer = ResultWriter(out, ["s"], details=True, shard_rows=4)
    for i, result in enumerate(results(10)):
        writer.write(result)
        rows = read_rows(out)  # read while the writer is open: a killed run leaves this
        done = i + 1 if suffix != ".parquet" else (i + 1) // 4 * 4
        assert [r["path"] for r in rows] == [f"img{j}.png" for j in range(done)]
    # a kill here: every row so far is on disk; close writes the last partial shard
    assert writer.close() == ([out] if suffix == ".jsonl" else [out, tmp_path / f"scores.regions{suffix}"])
    rows = read_rows(out)
    assert [float(r["score"]) for r in rows] == [3.0 + i for i in range(10)]
    if suffix == ".parquet":
        assert sorted(p.name for p in out.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
        assert len(read_rows(tmp_path / "scores.regions.parquet")) == 10


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_write_killed_part_way_keeps_the_rows_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    out = tmp_path / f"scores{suffix}"
    real = csv.DictWriter.writerows if suffix == ".csv" else json.dumps

    def failing(*args: Any, **kwargs: Any) -> Any:
        rows = args[1] if suffix == ".csv" else [args[0]]
        rows = list(rows)
        if any(r.get("path") == "img7.png" for r in rows):
            raise Killed
        return real(args[0], rows, **kwargs) if suffix == ".csv" else real(*args, **kwargs)

    monkeypatch.setattr(
        csv.DictWriter if suffix == ".csv" else json, "writerows" if suffix == ".csv" else "dumps", failing
    )
    with pytest.raises(Killed):
        write_results(results(150), ["s"], out, details=False)
    monkeypatch.undo()
    assert [r["path"] for r in read_rows(out)] == [f"img{i}.png" for i in range(7)]


def test_parquet_shards_keep_one_schema_when_a_shard_has_only_failures(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "scores.parquet"
    failed = [ImageResult(f"bad{i}.png", error="not an image") for i in range(2)]
    with ResultWriter(out, ["s"], columns=["id"], shard_rows=2) as writer:
        for i, result in enumerate(failed + results(2)):
            writer.write(result, {"id": i})
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [0, 1, 2, 3] and rows[0]["score"] is None and rows[2]["score"] == 3.0


def test_a_successful_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    write_results(results(2), ["s"], out, details=False)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
    assert out.read_text().splitlines()[1].startswith("img0.png,3.0,3.0,0,")


def test_replacing_keeps_the_suffix_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "fig.png"
    with replacing(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".png" and temp != target
        temp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(Killed), replacing(target) as temp:
        temp.write_bytes(b"partial")
        raise Killed
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_eval_files_are_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predictions, results.json/.md and figures: every file ``iqa eval`` writes."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from iqa_core.evaluation import evaluate, figures, report
    from iqa_core.evaluation.datasets import Item

    items = [Item(Path(f"img{i}.png"), float(i), f"img{i}.png") for i in range(20)]
    preds = tmp_path / "predictions.csv"
    evaluate.write_predictions(preds, items, results(20))
    rows = [{"recipe": "r", "dataset": "d", "n": 20, "srcc": 0.5, "plcc": 0.5}]
    report.write_markdown_report(tmp_path, rows)
    figures.scatter_with_marginals(list(range(20)), list(range(20)), tmp_path / "scatter")
    before = snapshot(tmp_path)
    assert set(before) == {"predictions.csv", "results.json", "results.md", "scatter.png", "scatter.svg"}

    real_writer = csv.writer

    class HalfWriter:
        def __init__(self, fh: Any) -> None:
            self.inner, self.n = real_writer(fh), 0

        def writerow(self, row: Any) -> Any:
            self.n += 1
            if self.n == 5:
                raise Killed
            return self.inner.writerow(row)

    monkeypatch.setattr(evaluate.csv, "writer", HalfWriter)
    with pytest.raises(Killed):
        evaluate.write_predictions(preds, items, results(20, score=1.0))

    def half_text(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with self.open("w") as fh:
            fh.write(text[:10])
        raise Killed

    monkeypatch.setattr(Path, "write_text", half_text)
    with pytest.raises(Killed):
        report.write_markdown_report(tmp_path, [{**rows[0], "srcc": 0.9}])

    def half_figure(self: Figure, where: Any, **kwargs: Any) -> None:
        Path(where).write_bytes(b"\x89PNG half")
        raise Killed

    monkeypatch.setattr(Figure, "savefig", half_figure)
    with pytest.raises(Killed):
        figures.scatter_with_marginals(list(range(20)), list(range(20, 0, -1)), tmp_path / "scatter")
    assert snapshot(tmp_path) == before
