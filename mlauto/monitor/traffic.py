"""Served rows and their late labels, in the monitor's database (:mod:`mlauto.monitor.store`): the
/feedback join, kept across monitor restarts, and the labelled production rows a retrain learns from.

Every row carries the model version that scored it. Writes take the caller's transaction, so a
batch of rows and the counters that count them commit together. The counts (``rows_joinable``,
``labelled_rows``) are kept as counters beside the rows, not counted per call.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlauto.errors import DuplicateFeedback, UnknownRows
from mlauto.monitor.store import MonitorStore, dumps, insert_new, traffic

# Bound parameters per statement: SQLite allows 32,766, PostgreSQL 65,535.
CHUNK = 5000


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
    """The traffic table of one monitor. ``counts`` is restored by the monitor from its state."""

    def __init__(self, store: MonitorStore, counts: dict[str, int] | None = None) -> None:
        self.store = store
        self.rows_joinable = int((counts or {}).get("rows_joinable", 0))
        self.labelled_rows = int((counts or {}).get("labelled_rows", 0))

    def _mine(self) -> Any:
        return traffic.c.monitor == self.store.monitor

    def add_served(self, conn: Connection, row_ids: list[str], predictions: np.ndarray,
                   confidence: np.ndarray | None, records: list[dict[str, Any]] | None,
                   model_version: str | None) -> int:
        """Store served rows (a row id already stored is kept as it was). Returns rows added."""
        now = time.time()
        conf = [None] * len(row_ids) if confidence is None else [
            None if c is None or c != c else float(c) for c in np.asarray(confidence, dtype=float)]
        recs = [None] * len(row_ids) if records is None else [dumps(r) for r in records]
        fresh: dict[str, dict[str, Any]] = {}
        for rid, p, c, r in zip(row_ids, predictions, conf, recs):
            fresh.setdefault(str(rid), {"monitor": self.store.monitor, "row_id": str(rid),
                                        "model_version": model_version, "prediction": json.dumps(_plain(p),
                                                                                                   default=str),
                                        "confidence": c, "record": r, "time": now, "labelled": False})
        rows = list(fresh.values())
        added = 0
        for i in range(0, len(rows), CHUNK // 10):
            added += insert_new(conn, traffic, rows[i : i + CHUNK // 10], traffic.c.seq)
        self.rows_joinable += added
        self.store.wrote(added)
        return added

    def prune(self, conn: Connection) -> int:
        """Forget unlabelled rows beyond the newest ``keep.unlabelled_rows``."""
        removed = self.store.prune(conn)["unlabelled_rows"]
        self.rows_joinable -= removed
        return removed

    def check_labels(self, conn: Connection, row_ids: list[str]) -> dict[str, Any]:
        """The stored predictions of ``row_ids`` (decoded; a corrupt one is None). Raises UnknownRows
        or DuplicateFeedback, changing nothing."""
        if len(set(row_ids)) != len(row_ids):
            raise DuplicateFeedback(row_ids[:10])
        found: dict[str, tuple[Any, bool]] = {}
        for i in range(0, len(row_ids), CHUNK):
            part = row_ids[i : i + CHUNK]
            query = sa.select(traffic.c.seq, traffic.c.row_id, traffic.c.prediction, traffic.c.labelled).where(
                self._mine(), traffic.c.row_id.in_(part))
            for seq, rid, prediction, labelled in conn.execute(query):
                try:
                    value = self.store.decode("traffic", seq, prediction)
                except KeyError:
                    value = None
                found[rid] = (value, bool(labelled))
        unknown = [r for r in row_ids if r not in found]
        if unknown:
            raise UnknownRows(unknown[:10])
        dup = [r for r in row_ids if found[r][1]]
        if dup:
            raise DuplicateFeedback(dup[:10])
        return {r: found[r][0] for r in row_ids}

    def add_labels(self, conn: Connection, row_ids: list[str], labels: list[Any], numeric: bool = False) -> list[Any]:
        """Join labels to served rows; all-or-nothing. Returns, per row, whether the prediction was right,
        or with ``numeric`` (a regressor) the error ``label - prediction``. A row whose stored
        prediction is corrupt keeps its label (training data) and is left out of the returned list."""
        predictions = self.check_labels(conn, row_ids)
        now = time.time()
        if numeric:
            try:
                scored = [(r, float(lab) - float(predictions[r]) if predictions[r] is not None else None)
                          for r, lab in zip(row_ids, labels)]
            except (TypeError, ValueError):
                raise ValueError("a regression model's labels must be numbers") from None
            correct = [None if e is None else int(e == 0.0) for _, e in scored]
        else:
            scored = [(r, None if predictions[r] is None else same_label(predictions[r], _plain(lab)))
                      for r, lab in zip(row_ids, labels)]
            correct = [None if ok is None else int(ok) for _, ok in scored]
        update = traffic.update().where(traffic.c.monitor == self.store.monitor,
                                        traffic.c.row_id == sa.bindparam("rid")).values(
            labelled=True, label=sa.bindparam("lab"), correct=sa.bindparam("ok"), label_time=now)
        params = [{"rid": r, "lab": json.dumps(_plain(lab), default=str), "ok": ok}
                  for r, lab, ok in zip(row_ids, labels, correct)]
        for i in range(0, len(params), CHUNK // 4):
            conn.execute(update, params[i : i + CHUNK // 4])
        self.labelled_rows += len(row_ids)
        return [v for _, v in scored if v is not None]

    def counts(self) -> dict[str, int]:
        return {"rows_joinable": self.rows_joinable, "labelled_rows": self.labelled_rows}

    def labelled(self, target: str, limit: int | None = None) -> pd.DataFrame:
        """Served records with their true label in column ``target``, oldest label first.

        ``limit`` keeps the newest rows. Rows served without their record cannot be used and are
        skipped, and so are corrupt records (counted).
        """
        t = traffic.c
        query = sa.select(t.seq, t.record, t.label).where(self._mine(), t.labelled.is_(True), t.record.is_not(None)
                                                           ).order_by(t.label_time.desc(), t.seq.desc())
        with self.store.engine.connect() as conn:
            rows = conn.execute(query.limit(limit) if limit else query).all()
        records, labels = [], []
        for seq, record, label in reversed(rows):
            try:
                rec, lab = self.store.decode("traffic", seq, record), self.store.decode("traffic", seq, label)
            except KeyError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
                labels.append(lab)
        frame = pd.DataFrame(records)
        frame[target] = labels
        return frame
