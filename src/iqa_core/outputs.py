"""Writing results as CSV, JSON Lines or Parquet, streamed as images finish.

One row per image: path, the manifest's own columns (if any), score, one column per scorer,
region count, error. With details, JSON Lines nests the regions in each image's record; CSV
and Parquet write them beside it, ``<name>.regions.<ext>``, one row per region.

A run holds no results: each row is written as its image finishes, in input order. CSV and
JSON Lines are flushed row by row, so the file is valid after every row and a killed run
leaves every finished row in it. Parquet cannot be appended to, so ``<name>.parquet`` is a
folder of shards of ``shard_rows`` rows (``part-00000.parquet``, ...), each written whole
(:func:`replacing`); pyarrow and pandas read the folder as one table.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .api import ImageResult
from .errors import IQAError

FORMATS = (".csv", ".jsonl", ".parquet")
IMAGE_COLUMNS = ("path", "score", "n_regions", "error")  # scorer columns go after "score"
REGION_COLUMNS = ("path", "region", "kind", "x0", "y0", "x1", "y1", "area")
SHARD_ROWS = 10_000


def image_row(result: ImageResult, labels: Sequence[str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"path": result.path, **(extra or {}), "score": result.score}
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
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise IQAError(f"{path}: unsupported output format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IQAError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None
    is_dir = path.is_dir() and suffix != ".parquet"  # a Parquet output is a folder of shards
    if is_dir or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise IQAError(f"{path}: cannot write the output there")


def regions_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.regions{path.suffix}")


class ResultWriter:
    """Rows appended as results arrive (``write``); ``close`` writes what is left and names the files.

    ``path`` None: CSV to stdout. ``columns`` are a manifest's own, written after ``path``.
    """

    def __init__(
        self,
        path: Path | None,
        labels: Sequence[str],
        details: bool = False,
        columns: Sequence[str] = (),
        shard_rows: int = SHARD_ROWS,
    ) -> None:
        self.path, self.labels, self.details = path, list(labels), details
        self.columns = ["path", *columns, "score", *labels, *IMAGE_COLUMNS[2:]]
        self.region_columns = [*REGION_COLUMNS, *labels]
        self.suffix = path.suffix.lower() if path is not None else ".csv"
        self.shard_rows = max(1, shard_rows)
        self._sinks: list[_Sink] = []
        if path is None:
            self._sinks.append(_CsvSink(sys.stdout, self.columns, own=False))
            return
        check_output_path(path)
        self._sinks.append(self._open(path, self.columns))
        if details and self.suffix != ".jsonl":
            self._sinks.append(self._open(regions_path(path), self.region_columns))

    def _open(self, path: Path, columns: list[str]) -> _Sink:
        try:
            if self.suffix == ".parquet":
                return _ParquetSink(path, columns, self.shard_rows, self.labels)
            fh = path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise IQAError(f"{path}: cannot write the output: {exc.strerror or exc}") from None
        return _JsonlSink(fh) if self.suffix == ".jsonl" else _CsvSink(fh, columns)

    @property
    def files(self) -> list[Path]:
        return [] if self.path is None else [s.path for s in self._sinks if s.path is not None]

    def write(self, result: ImageResult, extra: Mapping[str, Any] | None = None) -> None:
        row = image_row(result, self.labels, extra)
        try:
            if self.suffix == ".jsonl" and self.details:
                row["regions"] = region_rows(result, self.labels)
            self._sinks[0].add([row])
            if len(self._sinks) > 1:
                self._sinks[1].add(region_rows(result, self.labels))
        except OSError as exc:
            raise IQAError(
                f"{self.path}: cannot write the results: {exc.strerror or exc} (they are in the store: "
                "rerun the same command with another -o, nothing is recomputed)"
            ) from None

    def close(self) -> list[Path]:
        for sink in self._sinks:
            sink.close()
        return self.files

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Sink:
    path: Path | None = None

    def add(self, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class _CsvSink(_Sink):
    def __init__(self, fh: IO[str], columns: list[str], own: bool = True) -> None:
        self.fh, self.own = fh, own
        self.path = Path(fh.name) if own else None
        self.writer = csv.DictWriter(fh, fieldnames=columns)
        self.writer.writeheader()
        fh.flush()

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        self.fh.flush()

    def close(self) -> None:
        if self.own and not self.fh.closed:
            self.fh.close()


class _JsonlSink(_Sink):
    def __init__(self, fh: IO[str]) -> None:
        self.fh, self.path = fh, Path(fh.name)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.fh.writelines(json.dumps(row) + "\n" for row in rows)
        self.fh.flush()

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()


# Parquet types of the columns the engine writes; a manifest's own take the types of the first shard
_TYPES = {"path": "string", "kind": "string", "error": "string", "region": "int64", "n_regions": "int64"}
_TYPES.update({c: "int64" for c in ("x0", "y0", "x1", "y1")})


class _ParquetSink(_Sink):
    """A folder of shards, all of one schema (an empty run: one empty shard)."""

    def __init__(self, path: Path, columns: list[str], shard_rows: int, floats: Sequence[str]) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise IQAError("Parquet output needs pyarrow: pip install 'iqa[eval]'") from None
        if path.is_dir():
            shutil.rmtree(path)  # the shards of an earlier run: a new run replaces them all
        else:
            path.unlink(missing_ok=True)
        path.mkdir()
        self.path, self.columns, self.shard_rows = path, columns, shard_rows
        self.floats = {"score", "area", *floats}  # scores: a shard whose images all failed has only nulls
        self.rows: list[dict[str, Any]] = []
        self.shards = 0
        self.schema: Any = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        while len(self.rows) >= self.shard_rows:
            self._flush(self.rows[: self.shard_rows])
            del self.rows[: self.shard_rows]

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self.path is not None
        if self.schema is None:
            found = pa.Table.from_pylist(rows).schema if rows else pa.schema([])
            self.schema = pa.schema([pa.field(name, _type(pa, name, found, self.floats)) for name in self.columns])
        table = pa.Table.from_pylist(rows, schema=self.schema)
        with replacing(self.path / f"part-{self.shards:05d}.parquet") as temp:
            pq.write_table(table, temp)
        self.shards += 1

    def close(self) -> None:
        if self.rows or not self.shards:
            self._flush(self.rows)
            self.rows = []


def _type(pa: Any, name: str, found: Any, floats: set[str]) -> Any:
    """A column's Parquet type: the engine's own, or what the first shard holds (nothing: string)."""
    if name in floats:
        return pa.float64()
    if name in _TYPES:
        return pa.type_for_alias(_TYPES[name])
    seen = found.field(name).type if name in found.names else pa.null()
    return pa.string() if pa.types.is_null(seen) else seen


def write_results(
    results: Sequence[ImageResult], labels: Sequence[str], path: Path | None, details: bool
) -> list[Path]:
    """Write ``results`` to ``path`` (CSV to stdout when None); returns the files written."""
    with ResultWriter(path, labels, details) as writer:
        for result in results:
            writer.write(result)
    return writer.files
