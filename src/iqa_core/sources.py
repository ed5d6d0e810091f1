"""Inputs beyond local files: URIs read through fsspec, and manifests (tables of inputs).

A URI (``s3://``, ``gs://``, ``https://``, ``memory://``, ``file://``) is read where the
pixels are needed, by whichever process decodes it; one that cannot be read raises
:class:`ImageError` naming it, so it becomes an error row. A manifest (``.csv``, ``.jsonl``,
``.parquet``) names one input a row in its path column; its other columns travel to the
output rows unchanged.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import ImageError, IQAError

MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl", ".parquet"})
PATH_COLUMNS = ("path", "uri", "url", "image", "file")  # the first one a manifest has names its inputs
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str) -> bool:
    """``scheme://...``: read through fsspec, never looked up on the local disk."""
    return bool(_URI.match(text))


def read_uri(uri: str) -> bytes:
    """The bytes at ``uri`` (fsspec), or :class:`ImageError` saying why not."""
    import fsspec  # its protocols load on use; none at `iqa --help`

    try:
        with fsspec.open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ImageError(f"{uri}: not found") from None
    except ImportError as exc:  # e.g. s3fs or gcsfs not installed
        raise ImageError(f"{uri}: cannot read: {exc}") from None
    except ValueError as exc:  # an unknown protocol
        raise ImageError(f"{uri}: cannot read: {exc}") from None
    except Exception as exc:  # network and permission errors of every filesystem
        raise ImageError(f"{uri}: cannot read: {type(exc).__name__}: {exc}") from None


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file()


def manifest_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Each row of the manifest at ``path`` as a dict, its input under ``"path"`` (relative
    paths are relative to the manifest's folder) and its other columns as they are."""
    rows = _rows(path)
    column = None
    for n, row in enumerate(rows, start=1):
        if column is None:
            column = next((c for c in PATH_COLUMNS if c in row), None)
            if column is None:
                raise IQAError(f"manifest {path}: no path column; name one of {', '.join(PATH_COLUMNS)}")
        value = row.pop(column)
        if value is None or str(value).strip() == "":
            raise IQAError(f"manifest {path}: row {n}: empty {column!r}")
        text = str(value).strip()
        if not is_uri(text) and not Path(text).is_absolute():
            text = str(path.parent / text)
        yield {"path": text, **row}


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            yield from _parquet_rows(path)
            return
        with path.open(encoding="utf-8", newline="") as fh:
            if suffix == ".csv":
                yield from csv.DictReader(fh)
                return
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise IQAError(f"manifest {path}: line {n}: a JSON object per line, got {type(row).__name__}")
                    yield row
    except json.JSONDecodeError as exc:
        raise IQAError(f"manifest {path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise IQAError(f"manifest {path}: not UTF-8 text") from None
    except OSError as exc:
        raise IQAError(f"manifest {path}: cannot read: {exc.strerror or exc}") from None


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise IQAError("a Parquet manifest needs pyarrow: pip install 'iqa[eval]'") from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise IQAError(f"manifest {path}: not a readable Parquet file: {exc}") from None


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    for batch in _parquet_file(path).iter_batches(batch_size=4096):  # a row group at a time, never the whole table
        yield from batch.to_pylist()


def manifest_columns(inputs: Iterable[str | Path], reserved: Iterable[str]) -> list[str]:
    """The manifests' own columns among ``inputs`` (all but their path column), for the output's header.

    Read from a CSV's header and a Parquet file's schema; a JSONL manifest is read through
    once (its rows may differ), a row at a time. A column that an output column already
    has the name of (``reserved``) is refused: the output could not hold both.
    """
    columns: dict[str, None] = {}
    taken = set(reserved)
    for item in inputs:
        path = Path(str(item))
        if is_uri(str(item)) or not is_manifest(path):
            continue
        for name in _names(path):
            if name not in columns:
                if name in taken:
                    raise IQAError(f"manifest {path}: column {name!r} is also an output column; rename it")
                columns[name] = None
    return list(columns)


def _names(path: Path) -> list[str]:
    """A manifest's column names but its path column."""
    suffix = path.suffix.lower()
    names: dict[str, None] = {}
    if suffix == ".csv":
        rows = _rows(path)
        names.update((n, None) for n in next(rows, {}))
        rows.close()
    elif suffix == ".parquet":
        names.update((n, None) for n in _parquet_file(path).schema_arrow.names)
    else:
        for row in _rows(path):
            names.update((n, None) for n in row)
    column = next((c for c in PATH_COLUMNS if c in names), None)
    return [n for n in names if n != column]
