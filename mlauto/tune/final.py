"""Refit the winning trial's config on the training split and score it once on test."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from mlauto.data import Splits
from mlauto.features import Preprocessor
from mlauto.models import build_estimator
from mlauto.tune.metrics import evaluate


@dataclass
class FinalModel:
    pipeline: Pipeline  # steps: "prep" (fitted Preprocessor) and "model"
    family: str
    params: dict[str, Any]
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    train_seconds: float
    val_rows: int = 0  # rows behind val_metrics: the monitor's error-rate CUSUM sizes its threshold by it


def fit_final(prep: Preprocessor, family: str, params: dict[str, Any], splits: Splits, seed: int,
              X_train: np.ndarray | None = None, task: str = "binary") -> FinalModel:
    """Same data, params and seed as the trial, so the validation score matches the leaderboard.

    ``X_train``: the training matrix the trials saw (``prep.fit_transform``: cross-fitted target
    encodings); by default ``prep.transform`` of the training split.
    """
    features, target = splits.features, splits.target
    estimator = build_estimator(family, params, seed, task)
    start = time.perf_counter()
    if X_train is None:
        X_train = prep.transform(splits.train[features])
    estimator.fit(X_train, splits.train[target].to_numpy())
    seconds = time.perf_counter() - start
    pipeline = Pipeline([("prep", prep), ("model", estimator)])
    val = evaluate(pipeline, splits.val[features], splits.val[target].to_numpy(), task)
    test = evaluate(pipeline, splits.test[features], splits.test[target].to_numpy(), task)
    return FinalModel(pipeline, family, params, val, test, seconds, val_rows=len(splits.val))
