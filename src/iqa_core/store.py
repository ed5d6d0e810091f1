"""Embedded SQLite store: segmenter masks, per-view level probabilities, per-image results.

Keys are content, not paths: masks by (image hash, segmenter config); level
probabilities by (image hash, view identity, scorer config, standard texts);
results by (recipe key, image hash). So a rerun recomputes nothing, a killed
run resumes where it stopped, and recipes that differ only in aggregation
share every model output. WAL mode lets several worker processes share one file.

Nothing read back is trusted: a row that does not parse or holds impossible values
(non-finite, probabilities not summing to 1, a mask that does not decode to its
size) counts as missing, so it is recomputed and overwritten; ``repaired`` counts
them. A file that cannot be used (damaged, another schema, read-only when a write
is due, disk full) raises :class:`StoreError`, one line naming the file and what to do.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .api import LevelProbs
from .errors import IQAError

SCHEMA_VERSION = 1  # PRAGMA user_version; bump when a table changes
SCHEMA = """
CREATE TABLE IF NOT EXISTS masks (
    image TEXT NOT NULL, segmenter TEXT NOT NULL, masks TEXT NOT NULL,
    PRIMARY KEY (image, segmenter));
CREATE TABLE IF NOT EXISTS view_scores (
    image TEXT NOT NULL, view TEXT NOT NULL, scorer TEXT NOT NULL, standard TEXT NOT NULL,
    probs TEXT NOT NULL, level_values TEXT NOT NULL, top_is_level INTEGER,
    PRIMARY KEY (image, view, scorer, standard));
CREATE TABLE IF NOT EXISTS results (
    recipe TEXT NOT NULL, image TEXT NOT NULL, score REAL, scorer_scores TEXT NOT NULL,
    regions TEXT NOT NULL, width INTEGER, height INTEGER, created REAL NOT NULL,
    PRIMARY KEY (recipe, image));
"""

TABLES = ("masks", "view_scores", "results")
ViewKey = tuple[str, str, str, str]  # image, view, scorer, standard
ELSEWHERE = "move it away (the next run starts a new store there) or use --store elsewhere"


class StoreError(IQAError):
    """The store file cannot be opened, read or written; the run stops (what is stored stays)."""


class _BadRow(ValueError):
    """A stored row that does not hold what the writer wrote."""


class Store:
    """One SQLite file (or ``:memory:``); writes are grouped into short transactions."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = ":memory:" if path is None else str(path)
        self.read_only = False
        self.repaired = 0  # damaged rows read back, treated as missing (so recomputed and overwritten)
        self.results_saved = 0  # results this object wrote: what a failed run leaves for the rerun
        try:
            self.db = self._connect(None if path is None else Path(path))
        except OSError as exc:
            raise StoreError(f"store {self.path}: cannot open it: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None
        try:
            self._check_schema()
        except (sqlite3.Error, StoreError) as exc:
            self.db.close()
            raise exc if isinstance(exc, StoreError) else self._error(exc, "open") from None

    def _connect(self, file: Path | None) -> sqlite3.Connection:
        if file is None:
            return sqlite3.connect(":memory:", check_same_thread=False)
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
        folder_writable = os.access(file.parent, os.W_OK)
        self.read_only = file.exists() and not (folder_writable and os.access(file, os.W_OK))
        if self.read_only:  # WAL readers need the -shm index file: where it cannot be made, read as immutable
            mode = "ro" if folder_writable else "ro&immutable=1"
            return sqlite3.connect(f"file:{quote(str(file))}?mode={mode}", uri=True, check_same_thread=False)
        db = sqlite3.connect(str(file), timeout=60.0, check_same_thread=False)
        for attempt in range(50):  # switching to WAL ignores the busy timeout: retry
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _check_schema(self) -> None:
        """Create the tables in a new store; refuse one of another schema version or another layout."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(
                f"store {self.path} has schema version {version}, this iqa uses version {SCHEMA_VERSION}: {ELSEWHERE}"
            )
        layout = _layout(self.db)
        if layout and layout != _expected_layout():
            raise StoreError(
                f"store {self.path} is not an iqa store of this version (other tables or columns): {ELSEWHERE}"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:  # a store from before versions were recorded reads as it is
            if not layout:
                raise StoreError(f"store {self.path} is read-only and holds no iqa tables: use --store elsewhere")
            return
        # one transaction: a process opening the file meanwhile sees no tables or all of them
        self.db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """One line for a failed SQLite call (``doing``: open, read, write): which store, what, what to do."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        saved = f"{self.results_saved} results saved, rerun resumes"
        if code == "SQLITE_FULL" or "disk is full" in text:
            return StoreError(f"store {self.path}: disk full; {saved} (free some space, or use --store elsewhere)")
        if code.startswith("SQLITE_READONLY") or "readonly" in text:
            return StoreError(
                f"store {self.path} is read-only: stored results can be read, new ones cannot be saved "
                f"({text}); {saved} once it is writable, or use --store elsewhere"
            )
        if code == "SQLITE_NOTADB" or "not a database" in text:
            return StoreError(
                f"store {self.path} is not a SQLite store (damaged, or another kind of file): {ELSEWHERE}"
            )
        if code.startswith("SQLITE_CORRUPT") or "malformed" in text:
            return StoreError(f"store {self.path} is damaged ({text}): {ELSEWHERE}")
        if "no such table" in text or "no such column" in text or "columns but" in text:
            return StoreError(f"store {self.path} has another layout ({text}): {ELSEWHERE}")
        if doing == "open":
            return StoreError(f"store {self.path}: cannot open it ({text}): use --store elsewhere")
        return StoreError(f"store {self.path}: cannot {doing} it ({text}); {saved}")

    @contextmanager
    def _guard(self, doing: str = "read") -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a failed write (disk full, read-only) becomes a StoreError."""
        with self._guard("write"), self.db:
            yield

    def _read(self, decode: Any, row: tuple[Any, ...]) -> Any:
        """``decode(row)``, or None (counted in ``repaired``) when the row does not hold what was written."""
        try:
            return decode(row)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            self.repaired += 1
            return None

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the store file and empty it. A run whose readers never
        pause (a Ray run's keeper) leaves SQLite no moment to reset the log, so it grows with the run."""
        if self.path != ":memory:" and not self.read_only:
            with self._guard("write"):
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # masks ---------------------------------------------------------------
    def get_masks(self, image: str, segmenter: str) -> list[dict[str, Any]] | None:
        with self._guard():
            row = self.db.execute(
                "SELECT masks FROM masks WHERE image=? AND segmenter=?", (image, segmenter)
            ).fetchone()
        return None if row is None else self._read(_masks, row)

    def put_masks(self, image: str, segmenter: str, rles: Sequence[dict[str, Any]]) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO masks VALUES (?, ?, ?)", (image, segmenter, json.dumps(list(rles))))

    # level probabilities --------------------------------------------------
    def get_levels(self, keys: Iterable[ViewKey]) -> dict[ViewKey, LevelProbs]:
        found: dict[ViewKey, LevelProbs] = {}
        for key in keys:
            with self._guard():
                row = self.db.execute(
                    "SELECT probs, level_values, top_is_level FROM view_scores "
                    "WHERE image=? AND view=? AND scorer=? AND standard=?",
                    key,
                ).fetchone()
            levels = None if row is None else self._read(_levels, row)
            if levels is not None:
                found[key] = levels
        return found

    def put_levels(self, keys: Sequence[ViewKey], levels: LevelProbs) -> None:
        values = json.dumps(list(levels.values))
        rows = []
        for i, key in enumerate(keys):
            top = None if levels.top_is_level is None else int(bool(levels.top_is_level[i]))
            rows.append((*key, json.dumps(levels.probs[i].tolist()), values, top))
        with self._writing():
            self.db.executemany("INSERT OR REPLACE INTO view_scores VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    # results ---------------------------------------------------------------
    def get_result(self, recipe: str, image: str) -> dict[str, Any] | None:
        with self._guard():
            row = self.db.execute(
                "SELECT score, scorer_scores, regions, width, height FROM results WHERE recipe=? AND image=?",
                (recipe, image),
            ).fetchone()
        return None if row is None else self._read(_result, row)

    def put_result(
        self,
        recipe: str,
        image: str,
        score: float,
        scorer_scores: dict[str, float],
        regions: list[dict[str, Any]],
        size: tuple[int, int],
    ) -> None:
        with self._writing():
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (recipe, image, score, json.dumps(scorer_scores), json.dumps(regions), *size, time.time()),
            )
        self.results_saved += 1

    def export_rows(self, images: Sequence[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
        """Every row about ``images`` (content hashes; None: every row), to merge into another store."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        where = "" if images is None else f" WHERE image IN ({','.join('?' * len(images))})"
        with self._guard():
            for table in TABLES:
                out[table] = [tuple(r) for r in self.db.execute(f"SELECT * FROM {table}{where}", list(images or []))]
        return out

    def import_rows(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        with self._writing():
            for table in TABLES:
                data = rows.get(table, [])
                if data:
                    marks = ",".join("?" * len(data[0]))
                    self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", data)
        self.results_saved += len(rows.get("results", []))

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(table)
        with self._guard():
            return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@cache
def _expected_layout() -> dict[str, list[tuple[str, str]]]:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    layout = _layout(db)
    db.close()
    return layout


def _layout(db: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    """Every table's (column, type) list: what a store file must match to be read."""
    names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return {name: db.execute("SELECT name, type FROM pragma_table_info(?)", (name,)).fetchall() for name in names}


# reading rows back: each raises ValueError/TypeError/KeyError on a row that is not what was written


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _BadRow(f"not a finite number: {value!r}")
    return float(value)


def _rles(rles: Sequence[Any]) -> None:
    """One image's masks share one size (the segmenter's working resolution), and each RLE's
    runs must cover exactly that many pixels: pycocotools decodes short counts into
    uninitialised memory without complaint, so the runs are checked before anything decodes them."""
    if not rles:
        return
    sizes = {json.dumps(rle["size"]) for rle in rles}
    height, width = (int(_finite(v)) for v in rles[0]["size"])
    if len(sizes) > 1 or height <= 0 or width <= 0 or not all(isinstance(rle["counts"], str) for rle in rles):
        raise _BadRow("bad mask sizes or counts")
    totals, ok = _rle_runs([rle["counts"] for rle in rles])
    if not ok or np.any(totals != height * width):
        raise _BadRow("mask RLE does not decode to its size")


def _rle_runs(counts: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Per COCO compressed RLE string: the pixels its runs cover, and whether every run is valid.

    Vectorised over all strings at once (decoding ~50 masks to arrays costs ~10x more). Format
    (pycocotools' rleFrString): each value is 5-bit groups, low first, bit 0x20 = another group
    follows, 0x10 in the last = negative; from a string's 4th value on, values are deltas to
    the run two before. Runs after the first must be positive (the encoder's canonical form).
    """
    if not all(counts):
        raise _BadRow("empty RLE string")
    c = np.frombuffer("".join(counts).encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    edges = np.cumsum([len(text) for text in counts])
    if c.min() < 0 or c.max() > 63 or np.any(c[edges - 1] & 0x20):
        raise _BadRow("not an RLE string")
    ends = np.flatnonzero((c & 0x20) == 0)  # a value's last group; every string ends with one
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:  # more than 60 bits: garbage, and it would overflow
        raise _BadRow("not an RLE string")
    shift = 5 * (np.arange(c.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((c & 0x1F) << shift, starts)
    values -= np.where(c[ends] & 0x10, 1 << (5 * lengths), 0)
    string = np.searchsorted(edges, ends, side="right")  # which string each value belongs to
    first = np.searchsorted(string, np.arange(len(counts)))
    position = np.arange(values.size) - first[string]
    # run p = value p + run p - 2 from p = 3: a cumulative sum along each (string, parity) chain
    chain = string * 3 + np.where(position == 0, 0, 1 + position % 2)
    order = np.argsort(chain, kind="stable")
    sums = np.cumsum(values[order])
    head = np.concatenate(([True], chain[order][1:] != chain[order][:-1]))
    segment = np.maximum.accumulate(np.where(head, np.arange(head.size), 0))  # each one's chain head
    runs = np.empty_like(values)
    runs[order] = sums - (sums - values[order])[segment]
    ok = bool(np.all(runs[position > 0] > 0) and np.all(runs[position == 0] >= 0))
    return np.add.reduceat(runs, first), ok


def _masks(row: tuple[Any, ...]) -> list[dict[str, Any]]:
    rles = json.loads(row[0])
    if not isinstance(rles, list):
        raise _BadRow("masks are not a list")
    _rles(rles)
    return rles


def _levels(row: tuple[Any, ...]) -> LevelProbs:
    probs = np.asarray(json.loads(row[0]), dtype=np.float64)
    values = tuple(json.loads(row[1]))
    for value in values:
        _finite(value)
    if probs.ndim != 1 or len(probs) != len(values) or not values:
        raise _BadRow("level probabilities do not match the levels")
    if not (np.all(np.isfinite(probs)) and np.all(probs >= 0) and np.isclose(probs.sum(), 1.0, atol=1e-4)):
        raise _BadRow("level probabilities are not a distribution")
    top = None if row[2] is None else np.array([bool(row[2])])
    return LevelProbs(probs[None], values, top)


def _result(row: tuple[Any, ...]) -> dict[str, Any]:
    score, scorer_scores, regions, width, height = row
    scores = json.loads(scorer_scores)
    regions = json.loads(regions)
    if not isinstance(scores, dict) or not isinstance(regions, list):
        raise _BadRow("result scores or regions have the wrong shape")
    for value in scores.values():
        _finite(value)
    for region in regions:
        if not isinstance(region["kind"], str) or len(region["bbox"]) != 4:
            raise _BadRow("bad region")
        for value in [*region["bbox"], region["area"], *region["scores"].values()]:
            _finite(value)
    _rles([region["rle"] for region in regions if region.get("rle") is not None])
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise _BadRow("bad image size")
    return {"score": _finite(score), "scorer_scores": scores, "regions": regions, "size": (width, height)}
