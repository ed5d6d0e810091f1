"""Embedded SQLite store: segmenter masks, per-view level probabilities, per-image results.

Keys are content, not paths: masks by (image hash, segmenter config); level
probabilities by (image hash, view identity, scorer config, standard texts);
results by (recipe key, image hash). So a rerun recomputes nothing, a killed
run resumes where it stopped, and recipes that differ only in aggregation
share every model output. WAL mode lets several worker processes share one file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .api import LevelProbs
from .errors import IQAError

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


class Store:
    """One SQLite file (or ``:memory:``); writes are grouped into short transactions."""

    def __init__(self, path: str | Path | None = None) -> None:
        target = ":memory:" if path is None else str(path)
        self.path = target
        try:
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(target, timeout=60.0, check_same_thread=False)
            for attempt in range(50):  # switching to WAL ignores the busy timeout: retry
                try:
                    self.db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.1)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise IQAError(f"{target}: cannot open the store: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # masks ---------------------------------------------------------------
    def get_masks(self, image: str, segmenter: str) -> list[dict[str, Any]] | None:
        row = self.db.execute("SELECT masks FROM masks WHERE image=? AND segmenter=?", (image, segmenter)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_masks(self, image: str, segmenter: str, rles: Sequence[dict[str, Any]]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO masks VALUES (?, ?, ?)", (image, segmenter, json.dumps(list(rles))))

    # level probabilities --------------------------------------------------
    def get_levels(self, keys: Iterable[ViewKey]) -> dict[ViewKey, LevelProbs]:
        found: dict[ViewKey, LevelProbs] = {}
        for key in keys:
            row = self.db.execute(
                "SELECT probs, level_values, top_is_level FROM view_scores "
                "WHERE image=? AND view=? AND scorer=? AND standard=?",
                key,
            ).fetchone()
            if row is not None:
                top = None if row[2] is None else np.array([bool(row[2])])
                found[key] = LevelProbs(np.array([json.loads(row[0])]), tuple(json.loads(row[1])), top)
        return found

    def put_levels(self, keys: Sequence[ViewKey], levels: LevelProbs) -> None:
        values = json.dumps(list(levels.values))
        rows = []
        for i, key in enumerate(keys):
            top = None if levels.top_is_level is None else int(bool(levels.top_is_level[i]))
            rows.append((*key, json.dumps(levels.probs[i].tolist()), values, top))
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO view_scores VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    # results ---------------------------------------------------------------
    def get_result(self, recipe: str, image: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT score, scorer_scores, regions, width, height FROM results WHERE recipe=? AND image=?",
            (recipe, image),
        ).fetchone()
        if row is None:
            return None
        return {
            "score": row[0],
            "scorer_scores": json.loads(row[1]),
            "regions": json.loads(row[2]),
            "size": (row[3], row[4]),
        }

    def put_result(
        self,
        recipe: str,
        image: str,
        score: float,
        scorer_scores: dict[str, float],
        regions: list[dict[str, Any]],
        size: tuple[int, int],
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (recipe, image, score, json.dumps(scorer_scores), json.dumps(regions), *size, time.time()),
            )

    def export_rows(self, images: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
        """Every row about ``images`` (content hashes), to merge into another store."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        marks = ",".join("?" * len(images))
        for table in TABLES:
            out[table] = [
                tuple(r) for r in self.db.execute(f"SELECT * FROM {table} WHERE image IN ({marks})", list(images))
            ]
        return out

    def import_rows(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        with self.db:
            for table in TABLES:
                data = rows.get(table, [])
                if data:
                    marks = ",".join("?" * len(data[0]))
                    self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", data)

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
