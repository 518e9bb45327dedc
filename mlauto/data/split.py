"""Seeded train/validation/test splits: random, stratified, group-aware or by time.

Rows are cleaned first (:mod:`mlauto.data.clean`): bad rows are quarantined with a reason, never
dropped silently, so rows in = train + val + test + quarantined.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from mlauto import storage
from mlauto.config.schema import CleanConf, PrepareConf, SplitMethod
from mlauto.data.clean import CleanResult, clean_frame
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
    quality: dict[str, Any] = field(default_factory=dict)  # cleaning counts, profile and schema check

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != self.target]

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test), "quarantined": self.quarantined}


def _check_target(frame: pd.DataFrame, target: str) -> pd.Series:
    if frame.shape[1] < 2:
        raise DataError("the data needs at least one feature column besides the target")
    counts = frame[target].value_counts()
    if len(counts) < 2:
        raise DataError(f"target {target!r} has a single class ({counts.index[0]!r}); a classifier needs two or more")
    return counts


def _stratified(frame: pd.DataFrame, target: str, test_size: float, val_size: float, seed: int, stratify: bool):
    counts = _check_target(frame, target)
    if stratify and counts.min() < MIN_ROWS_PER_CLASS:
        raise DataError(
            f"class {counts.idxmin()!r} of target {target!r} has {counts.min()} row(s); stratified splits need "
            f">= {MIN_ROWS_PER_CLASS} per class. Add rows or set prepare.split=random"
        )
    strat = frame[target] if stratify else None
    rest, test = train_test_split(frame, test_size=test_size, stratify=strat, random_state=seed)
    strat_rest = rest[target] if stratify else None
    train, val = train_test_split(rest, test_size=val_size / (1.0 - test_size), stratify=strat_rest,
                                  random_state=seed)
    return train, val, test


def _by_group(frame: pd.DataFrame, target: str, group: str, test_size: float, val_size: float, seed: int):
    """GroupShuffleSplit twice: no group has rows on two sides. Sizes are fractions of the groups."""
    _check_target(frame, target)
    groups = frame[group].astype(str).to_numpy()
    if len(np.unique(groups)) < 3:
        raise DataError(f"prepare.group_column {group!r} has {len(np.unique(groups))} distinct group(s); "
                        "a group-aware split needs at least 3 (train, validation, test)")
    rest_idx, test_idx = next(GroupShuffleSplit(1, test_size=test_size, random_state=seed).split(frame, groups=groups))
    rest = frame.iloc[rest_idx]
    train_idx, val_idx = next(GroupShuffleSplit(1, test_size=val_size / (1.0 - test_size), random_state=seed)
                              .split(rest, groups=groups[rest_idx]))
    return rest.iloc[train_idx], rest.iloc[val_idx], frame.iloc[test_idx]


def _by_time(frame: pd.DataFrame, target: str, column: str, test_size: float, val_size: float):
    """Train on the past, validate on the next slice, test on the latest rows (a stable sort keeps ties in order)."""
    _check_target(frame, target)
    times = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(times) and not pd.api.types.is_numeric_dtype(times):
        times = pd.to_datetime(times, errors="coerce", format="ISO8601")
    if times.isna().any():
        raise DataError(f"prepare.time_column {column!r} has {int(times.isna().sum())} missing or unparseable "
                        "value(s); they should have been quarantined: list it in prepare.clean.required")
    order = np.argsort(times.to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    n = len(ordered)
    n_test, n_val = int(round(n * test_size)), int(round(n * val_size))
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise DataError(f"{n} row(s) are too few for a time split with test_size={test_size}, val_size={val_size}")
    return ordered.iloc[: n - n_test - n_val], ordered.iloc[n - n_test - n_val: n - n_test], ordered.iloc[n - n_test:]


def split(frame: pd.DataFrame, target: str, conf: PrepareConf, seed: int
          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded train/validation/test split. ``auto``: stratified on the target unless ``stratify`` is false
    or the target is a regression target (numbers with many distinct values: no classes to stratify on).
    ``conf`` gives the sizes, the method (``split``) and its group or time column."""
    test_size, val_size, method = conf.test_size, conf.val_size, str(conf.split)
    group_column, time_column = conf.group_column, conf.time_column
    if method == "auto":
        from mlauto.tasks import detect_task

        regression = target in frame.columns and detect_task(frame[target]) == "regression"
        method = "stratified" if conf.stratify and not regression else "random"
    if method not in SplitMethod.values():
        raise DataError(f"unknown split method {method!r}; use one of {', '.join(SplitMethod.values())}")
    for key, col in (("group_column", group_column), ("time_column", time_column)):
        if method == key.split("_")[0] and (not col or col not in frame.columns):
            raise DataError(f"prepare.split={method} needs prepare.{key} set to a column of the data; "
                            f"given {col!r}, columns: {', '.join(map(str, frame.columns))}")
    if method == "group":
        parts = _by_group(frame, target, group_column, test_size, val_size, seed)  # type: ignore[arg-type]
    elif method == "time":
        parts = _by_time(frame, target, time_column, test_size, val_size)  # type: ignore[arg-type]
    else:
        parts = _stratified(frame, target, test_size, val_size, seed, method == "stratified")
    train, val, test = (p.reset_index(drop=True) for p in parts)
    return train, val, test


def with_required(rules: CleanConf, columns: list[str | None]) -> CleanConf:
    """``rules`` (not changed) with ``columns`` (the split's group or time column) also required."""
    return dataclasses.replace(rules, required=list(dict.fromkeys([*rules.required, *(c for c in columns if c)])))


def required_columns(rules: CleanConf, conf: PrepareConf) -> CleanConf:
    """The cleaning rules with the split's group or time column also required (a row without it
    cannot be placed, so it is quarantined)."""
    method = str(conf.split)
    return with_required(rules, [conf.group_column if method == "group" else None,
                                 conf.time_column if method == "time" else None])


def splits_from_clean(cleaned: CleanResult, frame: pd.DataFrame, target: str, conf: PrepareConf, seed: int) -> Splits:
    """Split the kept rows of a cleaning result; the quarantine counts travel with the splits."""
    train, val, test = split(frame, target, conf, seed)
    return Splits(train, val, test, target, cleaned.rows_quarantined, dict(cleaned.reasons), cleaned.quarantine_path)


def make_splits(frame: pd.DataFrame, target: str, conf: PrepareConf, seed: int, *, fingerprint: str,
                quarantine_dir: str) -> Splits:
    """Clean an in-memory frame by ``conf.clean`` (quarantining bad rows) and split what is kept."""
    cleaned = clean_frame(frame, target, required_columns(conf.clean, conf), fingerprint=fingerprint,
                          quarantine_dir=quarantine_dir)
    return splits_from_clean(cleaned, cleaned.frame, target, conf, seed)


@dataclass(frozen=True)
class PrepareDirs:
    """Where preparing a snapshot writes: quarantined rows, kept (clean) rows, profiles, and the saved
    schema later snapshots are checked against."""

    quarantine: str
    clean: str
    profiles: str
    schema_path: str


def prepare_snapshot(path: str, target: str, conf: PrepareConf, seed: int, *, fingerprint: str,
                     dirs: PrepareDirs) -> Splits:
    """Stream a Parquet snapshot through cleaning and profiling (Ray Data), check it against the saved
    schema (``conf.schema_check``), then split the kept rows. ``splits.quality`` holds what the summary
    and MLflow report."""
    import ray.data

    from mlauto.data.clean import CleanOutput, clean_dataset
    from mlauto.data.profile import (
        ProfileAccumulator,
        check_schema,
        enforce_schema,
        load_json,
        profile_table,
        save_json,
        schema_from_profile,
    )

    rules = required_columns(conf.clean, conf)
    schema_path = dirs.schema_path
    reference = load_json(schema_path)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # reproducible splits
    cleaned = clean_dataset(
        ray.data.read_parquet(path), target, rules,
        CleanOutput(fingerprint, dirs.quarantine, storage.join(storage.normalize(dirs.clean), f"{fingerprint}.parquet")),
        profiler=lambda plan: ProfileAccumulator(plan.kinds, target, sample_size=conf.profile_sample_rows,
                                                 reference=reference),
    )
    profile = cleaned.profile or {}
    profile["cleaning"] = cleaned.summary()
    report: dict[str, Any] = {"ok": True, "reference": None}
    if reference is None:
        save_json(schema_from_profile(profile), schema_path)
        logger.info("schema inferred and saved to %s; later snapshots are checked against it", schema_path)
    else:
        report = {**check_schema(reference, profile), "reference": schema_path}
    profile["schema_check"] = report
    profile_path = save_json(profile, storage.join(storage.normalize(dirs.profiles), f"{fingerprint}.json"))
    logger.info("profile (%s) -> %s\n%s", profile.get("approximate"), profile_path, profile_table(profile))
    enforce_schema(report, str(conf.schema_check), schema_path)
    splits = splits_from_clean(cleaned, storage.read_parquet(cleaned.kept_path), target, conf, seed)
    splits.quality = {"profile_path": profile_path, "schema_path": schema_path, "schema_check": report,
                      "cleaning": cleaned.summary()}
    return splits
