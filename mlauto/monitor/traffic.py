"""Served rows and their late labels, in SQLite: the /feedback join, kept across monitor restarts,
and the labelled production rows a retrain learns from.

One small transaction per batch keeps the request path's hand-off cheap (the monitor writes a few
rows every flush), and nothing here is pickled with the monitor's state.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

import numpy as np
import pandas as pd

from mlauto.errors import DuplicateFeedback, UnknownRows

SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    row_id TEXT UNIQUE NOT NULL,
    model_version TEXT,
    prediction TEXT NOT NULL,
    confidence REAL,
    record TEXT,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    row_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    correct INTEGER NOT NULL,
    time REAL NOT NULL
);
"""


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def same_label(prediction: Any, label: Any) -> bool:
    """A prediction and a true label are the same class: 1, 1.0 and "1" agree (JSON and numpy
    disagree on types), "yes" and "yes" too."""
    if str(prediction) == str(label):
        return True
    try:
        return float(prediction) == float(label)
    except (TypeError, ValueError):
        return False


class TrafficLog:
    """``path=None`` keeps the log in memory (``monitor.persist=false``).

    Only the newest ``max_rows`` unlabelled rows are kept for the join; labelled rows are kept, since
    they are training data.
    """

    def __init__(self, path: str | None, max_rows: int = 100_000) -> None:
        self.path = os.path.abspath(path) if path else None
        self.max_rows = max_rows
        if self.path:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.db = sqlite3.connect(self.path or ":memory:", check_same_thread=False, isolation_level=None)
        if self.path:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._inserted = 0

    def add_served(self, row_ids: list[str], predictions: np.ndarray, confidence: np.ndarray | None,
                   records: list[dict[str, Any]] | None, model_version: str | None) -> None:
        now = time.time()
        conf = [None] * len(row_ids) if confidence is None else [float(c) for c in confidence]
        recs = [None] * len(row_ids) if records is None else [json.dumps(r, default=_plain) for r in records]
        rows = [(rid, model_version, json.dumps(_plain(p)), c, r, now)
                for rid, p, c, r in zip(row_ids, predictions, conf, recs)]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO served (row_id, model_version, prediction, confidence, "
                                "record, time) VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._inserted += len(rows)
        if self._inserted >= max(1000, self.max_rows // 10):
            self.prune()

    def prune(self) -> int:
        """Forget unlabelled rows older than the newest ``max_rows``."""
        self._inserted = 0
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute(
                "DELETE FROM served WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM served) - ? "
                "AND row_id NOT IN (SELECT row_id FROM labels)", (self.max_rows,))
        return cur.rowcount

    def add_labels(self, row_ids: list[str], labels: list[Any], numeric: bool = False) -> list[Any]:
        """Join labels to served rows; all-or-nothing. Returns, per row, whether the prediction was right,
        or with ``numeric`` (a regressor) the error ``label - prediction``."""
        if len(set(row_ids)) != len(row_ids):
            raise DuplicateFeedback(row_ids[:10])
        marks = ",".join("?" * len(row_ids))
        found = dict(self.db.execute(f"SELECT row_id, prediction FROM served WHERE row_id IN ({marks})", row_ids))
        unknown = [r for r in row_ids if r not in found]
        if unknown:
            raise UnknownRows(unknown[:10])
        dup = [r for (r,) in self.db.execute(f"SELECT row_id FROM labels WHERE row_id IN ({marks})", row_ids)]
        if dup:
            raise DuplicateFeedback(dup[:10])
        now = time.time()
        if numeric:
            try:
                errors = [float(label) - float(json.loads(found[r])) for r, label in zip(row_ids, labels)]
            except (TypeError, ValueError):
                raise ValueError("a regression model's labels must be numbers") from None
            correct = [e == 0.0 for e in errors]
        else:
            correct = [same_label(json.loads(found[r]), _plain(label)) for r, label in zip(row_ids, labels)]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO labels (row_id, label, correct, time) VALUES (?, ?, ?, ?)",
                                [(r, json.dumps(_plain(lab)), int(ok), now)
                                 for r, lab, ok in zip(row_ids, labels, correct)])
        return errors if numeric else correct

    def counts(self) -> dict[str, int]:
        served = self.db.execute("SELECT COUNT(*) FROM served").fetchone()[0]
        labelled = self.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        return {"rows_joinable": int(served), "labelled_rows": int(labelled)}

    def labelled(self, target: str, limit: int | None = None) -> pd.DataFrame:
        """Served records with their true label in column ``target``, oldest label first.

        ``limit`` keeps the newest rows. Rows served without their record cannot be used and are skipped.
        """
        query = ("SELECT s.record, l.label, l.time, s.model_version, s.row_id FROM labels l "
                 "JOIN served s ON s.row_id = l.row_id WHERE s.record IS NOT NULL ORDER BY l.time DESC, s.seq DESC")
        rows = self.db.execute(query + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
        rows.reverse()
        frame = pd.DataFrame([json.loads(r[0]) for r in rows])
        frame[target] = [json.loads(r[1]) for r in rows]
        return frame

    def close(self) -> None:
        self.db.close()
