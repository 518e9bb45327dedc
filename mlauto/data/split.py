"""Target checks, quarantine of unusable rows, and seeded stratified splits."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from mlauto.errors import DataError

logger = logging.getLogger(__name__)

MIN_ROWS_PER_CLASS = 3


@dataclass
class Splits:
    """Train/validation/test frames (features and target together) plus what was set aside."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    target: str
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != self.target]

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test), "quarantined": self.quarantined}


def quarantine_missing_target(
    frame: pd.DataFrame, target: str, fingerprint: str, quarantine_dir: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set rows without a target aside in a Parquet file with a reason; never drop them silently."""
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data; set data.target to one of: {', '.join(map(str, frame.columns))}"
        )
    missing = frame[target].isna()
    bad = frame[missing].copy()
    if len(bad):
        bad["reason"] = "missing target"
        bad["snapshot"] = fingerprint
        os.makedirs(quarantine_dir, exist_ok=True)
        path = os.path.join(os.path.abspath(quarantine_dir), f"{fingerprint}.parquet")
        bad.to_parquet(path, index=False)
        logger.warning("quarantined %d row(s) with a missing target -> %s", len(bad), path)
    return frame[~missing].reset_index(drop=True), bad


def split(
    frame: pd.DataFrame, target: str, *, test_size: float, val_size: float, stratify: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded train/validation/test split, stratified on the target when asked."""
    if frame.shape[1] < 2:
        raise DataError("the data needs at least one feature column besides the target")
    counts = frame[target].value_counts()
    if len(counts) < 2:
        raise DataError(f"target {target!r} has a single class ({counts.index[0]!r}); a classifier needs two or more")
    if stratify and counts.min() < MIN_ROWS_PER_CLASS:
        raise DataError(
            f"class {counts.idxmin()!r} of target {target!r} has {counts.min()} row(s); stratified splits need "
            f">= {MIN_ROWS_PER_CLASS} per class. Add rows or set prepare.stratify=false"
        )
    strat = frame[target] if stratify else None
    rest, test = train_test_split(frame, test_size=test_size, stratify=strat, random_state=seed)
    strat_rest = rest[target] if stratify else None
    train, val = train_test_split(
        rest, test_size=val_size / (1.0 - test_size), stratify=strat_rest, random_state=seed
    )
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def make_splits(
    frame: pd.DataFrame,
    target: str,
    *,
    fingerprint: str,
    quarantine_dir: str,
    test_size: float,
    val_size: float,
    stratify: bool,
    seed: int,
) -> Splits:
    kept, bad = quarantine_missing_target(frame, target, fingerprint, quarantine_dir)
    if kept.empty:
        raise DataError(f"every row lacks the target {target!r}; check data.target and the file")
    train, val, test = split(kept, target, test_size=test_size, val_size=val_size, stratify=stratify, seed=seed)
    reasons = {"missing target": len(bad)} if len(bad) else {}
    qpath = os.path.join(os.path.abspath(quarantine_dir), f"{fingerprint}.parquet") if len(bad) else None
    return Splits(train, val, test, target, len(bad), reasons, qpath)
