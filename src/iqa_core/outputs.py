"""Writing results as CSV, JSON Lines or Parquet.

One row per image: path, score, one column per scorer, region count, error.
With details, JSON Lines nests the regions in each image's record; CSV and
Parquet write them to a sibling file ``<name>.regions.<ext>``, one row per region.
Every file is written beside its target and renamed over it (:func:`replacing`),
so a run killed while writing leaves the previous file whole.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .api import ImageResult
from .errors import IQAError

FORMATS = (".csv", ".jsonl", ".parquet")
IMAGE_COLUMNS = ("path", "score", "n_regions", "error")  # scorer columns go after "score"
REGION_COLUMNS = ("path", "region", "kind", "x0", "y0", "x1", "y1", "area")


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


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder, renamed over ``path`` when the block succeeds.

    The rename is atomic, so readers (and a rerun after a kill) see the old file or the new
    one, never a truncated one. The temporary name keeps the suffix: writers that infer the
    format from it (matplotlib) still do. On an error it is removed and the target left as it was.
    """
    path = Path(path)
    temp = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def check_output_path(path: Path) -> None:
    """Fail before any scoring if ``path`` cannot be written: a long run must not end in that."""
    if path.suffix.lower() not in FORMATS:
        raise IQAError(f"{path}: unsupported output format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IQAError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise IQAError(f"{path}: cannot write the output there")


def write_results(
    results: Sequence[ImageResult], labels: Sequence[str], path: Path | None, details: bool
) -> list[Path]:
    """Write to ``path`` (CSV to stdout when None); returns the files written."""
    images = [image_row(r, labels) for r in results]
    if path is None:
        _write_csv(images, sys.stdout)
        return []
    check_output_path(path)
    try:
        return _write(results, labels, images, path, details)
    except OSError as exc:
        raise IQAError(
            f"{path}: cannot write the results: {exc.strerror or exc} (they are in the store: "
            "rerun the same command with another -o, nothing is recomputed)"
        ) from None


def _write(
    results: Sequence[ImageResult], labels: Sequence[str], images: list[dict[str, Any]], path: Path, details: bool
) -> list[Path]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with replacing(path) as temp, temp.open("w", encoding="utf-8") as fh:
            for result, row in zip(results, images):
                if details:
                    row = {**row, "regions": region_rows(result, labels)}
                fh.write(json.dumps(row) + "\n")
        return [path]
    written = [path]
    _write_table(images, [*IMAGE_COLUMNS[:2], *labels, *IMAGE_COLUMNS[2:]], path)
    if details:
        sibling = path.with_name(f"{path.stem}.regions{path.suffix}")
        regions = [row for r in results for row in region_rows(r, labels)]
        _write_table(regions, [*REGION_COLUMNS, *labels], sibling)
        written.append(sibling)
    return written


def _write_table(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    """``columns`` name the header even when there are no rows (e.g. every image failed)."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise IQAError("Parquet output needs pyarrow: pip install 'iqa[eval]'") from None
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns})
        with replacing(path) as temp:
            pq.write_table(table, temp)
        return
    with replacing(path) as temp, temp.open("w", newline="", encoding="utf-8") as fh:
        _write_csv(rows, fh, columns)


def _write_csv(rows: list[dict[str, Any]], fh: IO[str], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    if not columns:
        return
    writer = csv.DictWriter(fh, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
