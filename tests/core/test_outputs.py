"""Output files are replaced whole or not at all: a write that dies half way leaves the previous file.

Each test writes a complete file, then makes the next write of it fail part way
through (as a kill or a full disk would), and checks that the previous file is
intact and that no temporary file is left beside it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from iqa_core.api import ImageResult, Region, RegionScore
from iqa_core.outputs import replacing, write_results


class Killed(BaseException):
    """Stands for the process dying mid-write (not an Exception: nothing may swallow it)."""


def results(n: int, score: float = 3.0) -> list[ImageResult]:
    regions = [RegionScore(0, Region("global", (0, 0, 4, 4), 1.0), {"s": score})]
    return [ImageResult(f"img{i}.png", score + i, {"s": score + i}, regions, f"h{i}", (4, 4)) for i in range(n)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_failed_write_leaves_the_previous_output_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    if suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / f"scores{suffix}"
    assert write_results(results(150), ["s"], out, details=True)
    before = snapshot(tmp_path)
    assert set(before) == ({out.name} if suffix == ".jsonl" else {out.name, f"scores.regions{suffix}"})

    if suffix == ".csv":

        def writerows(self: csv.DictWriter, rows: Any) -> None:
            for row in rows:
                if row["path"] == "img7.png":
                    raise Killed
                self.writerow(row)

        monkeypatch.setattr(csv.DictWriter, "writerows", writerows)
    elif suffix == ".jsonl":
        real_dumps = json.dumps

        def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
            if isinstance(obj, dict) and obj.get("path") == "img7.png":
                raise Killed
            return real_dumps(obj, *args, **kwargs)

        monkeypatch.setattr(json, "dumps", dumps)
    else:

        def write_table(table: Any, where: Any, **kwargs: Any) -> None:
            Path(where).write_bytes(b"PAR1 half a file")
            raise Killed

        monkeypatch.setattr(pq, "write_table", write_table)
    with pytest.raises(Killed):
        write_results(results(150, score=5.0), ["s"], out, details=True)
    assert snapshot(tmp_path) == before  # same files, same bytes, no temporary left


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
