"""Versioned snapshots: every ingestion lands as Parquet named by a fingerprint of its content."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import ray.data

from mlauto.data.sources import Source
from mlauto.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Snapshot:
    path: str
    fingerprint: str
    n_rows: int
    columns: list[str]
    created: float
    source: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self) -> pd.DataFrame:
        return pd.read_parquet(self.path)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a frame: column names, dtypes and every value, independent of the source file."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()[:16]


def ingest(source: Source, snapshot_dir: str) -> Snapshot:
    """Read ``source`` through Ray Data and store a Parquet snapshot named by its fingerprint.

    An unchanged source maps to the same fingerprint, so it is stored once. Row order is kept
    (files in sorted order), so a folder or glob fingerprints the same on every read.
    """
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset: ray.data.Dataset = source.read()
    frame = dataset.to_pandas()
    if frame.empty:
        raise DataError(f"the source {source.describe()} has no rows")
    frame = frame.reset_index(drop=True)
    fp = fingerprint(frame)
    os.makedirs(snapshot_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(snapshot_dir), f"{fp}.parquet")
    meta_path = path.replace(".parquet", ".json")
    if os.path.exists(path) and os.path.exists(meta_path):
        logger.info("snapshot %s already stored (%d rows); not writing it again", fp, len(frame))
        with open(meta_path) as fh:
            return Snapshot(**json.load(fh))
    tmp = f"{path}.tmp-{os.getpid()}"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # atomic: a reader never sees half a snapshot
    snap = Snapshot(path, fp, len(frame), [str(c) for c in frame.columns], time.time(), source.describe())
    with open(meta_path, "w") as fh:
        json.dump(snap.to_dict(), fh, indent=2)
    logger.info("snapshot %s: %d rows x %d columns -> %s", fp, len(frame), frame.shape[1], path)
    return snap
