"""Writing results as CSV, JSON Lines or Parquet.

One row per image: path, score, one column per scorer, region count, error.
With details, JSON Lines nests the regions in each image's record; CSV and
Parquet write them to a sibling file ``<name>.regions.<ext>``, one row per region.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .api import ImageResult
from .errors import IQAError

FORMATS = (".csv", ".jsonl", ".parquet")


def image_row(result: ImageResult, labels: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"path": result.path, "score": result.score}
    for label in labels:
        row[label] = result.scorer_scores.get(label)
    row["n_regions"] = result.n_regions if result.error is None else None
    row["error"] = result.error
    return row


def region_rows(result: ImageResult, labels: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for rs in result.regions:
        row: dict[str, Any] = {
            "path": result.path,
            "region": rs.index,
            "kind": rs.region.kind,
            "x0": rs.region.bbox[0],
            "y0": rs.region.bbox[1],
            "x1": rs.region.bbox[2],
            "y1": rs.region.bbox[3],
            "area": rs.region.area,
        }
        row.update({label: rs.scores.get(label) for label in labels})
        rows.append(row)
    return rows


def check_output_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise IQAError(f"{path}: unsupported output format {path.suffix!r}; use one of {', '.join(FORMATS)}")


def write_results(
    results: Sequence[ImageResult], labels: Sequence[str], path: Path | None, details: bool
) -> list[Path]:
    """Write to ``path`` (CSV to stdout when None); returns the files written."""
    images = [image_row(r, labels) for r in results]
    if path is None:
        _write_csv(images, sys.stdout)
        return []
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for result, row in zip(results, images):
                if details:
                    row = {**row, "regions": region_rows(result, labels)}
                fh.write(json.dumps(row) + "\n")
        return [path]
    written = [path]
    _write_table(images, path)
    if details:
        sibling = path.with_name(f"{path.stem}.regions{path.suffix}")
        _write_table([row for r in results for row in region_rows(r, labels)], sibling)
        written.append(sibling)
    return written


def _write_table(rows: list[dict[str, Any]], path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise IQAError("Parquet output needs pyarrow: pip install 'iqa[eval]'") from None
        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        _write_csv(rows, fh)


def _write_csv(rows: list[dict[str, Any]], fh: IO[str]) -> None:
    if not rows:
        return
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
