"""Versioned snapshots: every ingestion lands as Parquet named by a fingerprint of its content.

``<dir>/<fingerprint>.parquet`` holds the rows and ``<dir>/<fingerprint>.json`` the record (time,
rows, columns, source); ``<dir>/CURRENT`` names the snapshot the last ingestion produced, which
pruning never removes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import pandas as pd
import ray.data

from mlauto import storage
from mlauto.data.sources import Source
from mlauto.errors import DataError

logger = logging.getLogger(__name__)

CURRENT = "CURRENT"


@dataclass
class Snapshot:
    path: str
    fingerprint: str
    n_rows: int
    columns: list[str]
    created: float
    source: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0  # the last ingestion that found this content (0: only at ``created``)
    # True when this ingestion stored it, False when the same content was already there. Not persisted.
    new: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        self.last_seen = self.last_seen or self.created

    def to_pandas(self) -> pd.DataFrame:
        return storage.read_parquet(self.path)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("new")
        return record


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a frame: column names, dtypes and every value, independent of the source file."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()[:16]


def _write_json(path: str, data: Any) -> None:
    storage.write_json(path, data)  # atomic: a reader never sees half a record


class _SchemaChanged(Exception):
    """A later block of the source has other column types than the first."""


def _stream_to_parquet(dataset: ray.data.Dataset, path: str) -> tuple[str, int, list[str]]:
    """Write ``dataset`` block by block to one Parquet file, hashing as it goes: memory stays at a
    few blocks whatever the source's size. Returns (fingerprint, rows, columns)."""
    import pyarrow as pa

    digest, rows, writer, schema = hashlib.sha256(), 0, None, None
    try:
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            if writer is None:
                schema = table.schema
                writer = storage.parquet_writer(path, schema)
                digest.update(json.dumps([[f.name, str(f.type)] for f in schema]).encode())
            elif not table.schema.equals(schema):
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    raise _SchemaChanged(str(exc)) from exc
            if table.num_rows:
                writer.write_table(table)
                digest.update(pd.util.hash_pandas_object(table.to_pandas(), index=False).values.tobytes())
                rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return digest.hexdigest()[:16], rows, list(schema.names) if schema is not None else []


def ingest(source: Source, snapshot_dir: str, keep: int | None = None) -> Snapshot:
    """Read ``source`` through Ray Data and store a Parquet snapshot named by its fingerprint.

    The rows stream to disk block by block (bounded memory); only when a later block's column types
    cannot be cast to the first block's is the source read whole, so that pandas can unify them.
    An unchanged source maps to the same fingerprint, so it is stored once (``new`` is False then).
    Row order is kept (files in sorted order), so a folder or glob fingerprints the same on every read.
    With ``keep``, only the ``keep`` most recently seen snapshots stay, and never this one.
    """
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset: ray.data.Dataset = source.read()
    snapshot_dir = storage.normalize(snapshot_dir)
    storage.makedirs(snapshot_dir)
    tmp = storage.join(snapshot_dir, f".ingest-{os.getpid()}-{time.time_ns()}.parquet")
    try:
        try:
            fp, n_rows, columns = _stream_to_parquet(dataset, tmp)
        except _SchemaChanged as exc:
            logger.warning("column types differ between parts of %s (%s); reading it whole to unify them",
                           source.describe(), exc)
            frame = dataset.to_pandas().reset_index(drop=True)
            fp, n_rows, columns = fingerprint(frame), len(frame), [str(c) for c in frame.columns]
            storage.write_parquet(frame, tmp)
        if n_rows == 0:
            raise DataError(f"the source {source.describe()} has no rows; point data.* at data with rows")
        path = storage.join(snapshot_dir, f"{fp}.parquet")
        meta_path = path.replace(".parquet", ".json")
        now = time.time()
        if storage.exists(path) and storage.exists(meta_path):
            logger.info("snapshot %s already stored (%d rows); not writing it again", fp, n_rows)
            snap = Snapshot(**storage.read_json(meta_path))
            snap.last_seen = now
        else:
            storage.replace(tmp, path)  # atomic: a reader never sees half a snapshot
            snap = Snapshot(path, fp, n_rows, columns, now, source.describe(), now, new=True)
            logger.info("snapshot %s: %d rows x %d columns -> %s", fp, n_rows, len(columns), path)
    finally:
        storage.remove(tmp)
    _write_json(meta_path, snap.to_dict())
    _write_json(storage.join(snapshot_dir, CURRENT), {"fingerprint": fp, "time": now})
    if keep is not None:
        prune_snapshots(snapshot_dir, keep, protect=[fp])
    return snap


def current_fingerprint(snapshot_dir: str) -> str | None:
    """The fingerprint of the snapshot the last ingestion produced (None before the first one)."""
    try:
        return storage.read_json(storage.join(snapshot_dir, CURRENT))["fingerprint"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def list_snapshots(snapshot_dir: str) -> list[Snapshot]:
    """Every stored snapshot, most recently seen first."""
    snaps = []
    for name in storage.listdir(snapshot_dir):
        if not name.endswith(".json") or name.startswith(CURRENT):
            continue
        meta_path = storage.join(snapshot_dir, name)
        try:
            snap = Snapshot(**storage.read_json(meta_path))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            logger.warning("skipping unreadable snapshot record %s: %s", meta_path, exc)
            continue
        if storage.exists(snap.path):
            snaps.append(snap)
    return sorted(snaps, key=lambda s: (s.last_seen, s.created), reverse=True)


def prune_snapshots(snapshot_dir: str, keep: int, protect: Iterable[str] = ()) -> list[Snapshot]:
    """Delete all but the ``keep`` most recently seen snapshots; the current one and ``protect`` stay.

    Returns the removed snapshots.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    protected = {*protect, current_fingerprint(snapshot_dir)}
    removed = []
    for snap in list_snapshots(snapshot_dir)[keep:]:
        if snap.fingerprint in protected:
            continue
        for path in (snap.path, snap.path.replace(".parquet", ".json")):
            storage.remove(path)
        removed.append(snap)
    if removed:
        logger.info("pruned %d snapshot(s) (keep %d): %s", len(removed), keep, [s.fingerprint for s in removed])
    return removed


def format_snapshots(snaps: list[Snapshot], current: str | None = None) -> str:
    """A short table for the CLI: one line per snapshot, the current one marked with ``*``."""
    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))

    lines = [f"  {'fingerprint':<16}  {'created':<19}  {'last seen':<19}  {'rows':>9}  {'cols':>4}  source"]
    for s in snaps:
        src = ", ".join(f"{k}={v}" for k, v in s.source.items() if v is not None)
        mark = "*" if s.fingerprint == current else " "
        lines.append(f"{mark} {s.fingerprint:<16}  {when(s.created)}  {when(s.last_seen)}  {s.n_rows:>9}  "
                     f"{len(s.columns):>4}  {src}")
    return "\n".join(lines)
