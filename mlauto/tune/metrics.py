"""Metrics computed the same way for trials, the final model and the monitor, for every task."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Most distinct values a numeric target may have and still be read as classes.
MAX_CLASSES = 20


def detect_task(y: Any) -> str:
    """binary, multiclass or regression, from the target's values.

    Text, booleans and categories are classes; integers with few distinct values are classes; other
    numbers are a regression target. ``tune.task`` overrides this.
    """
    values = np.asarray(y)
    distinct = np.unique(values[~_missing(values)])
    if values.dtype.kind in "OUSb" or str(getattr(y, "dtype", "")) == "category":
        return "binary" if len(distinct) <= 2 else "multiclass"
    if len(distinct) <= 2:
        return "binary"
    integral = values.dtype.kind in "iu" or bool(np.all(np.mod(distinct.astype(float), 1) == 0))
    if integral and len(distinct) <= MAX_CLASSES:
        return "multiclass"
    return "regression"


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def evaluate(model: Any, X: Any, y: Any, task: str) -> dict[str, float]:
    """Every metric of ``task`` (see :data:`TASKS`) for a fitted model."""
    if task == "regression":
        return regression_metrics(model, X, y)
    return classification_metrics(model, X, y)


def regression_metrics(model: Any, X: Any, y: Any) -> dict[str, float]:
    """rmse, mae and r2."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(model.predict(X), dtype=float)
    return {"rmse": float(math.sqrt(mean_squared_error(y, pred))), "mae": float(mean_absolute_error(y, pred)),
            "r2": float(r2_score(y, pred)) if len(y) > 1 else math.nan}


def classification_metrics(model: Any, X: Any, y: Any) -> dict[str, float]:
    """accuracy, f1 (binary on the second class, macro otherwise), roc_auc (one-vs-rest) and log_loss."""
    y = np.asarray(y)
    proba = np.asarray(model.predict_proba(X))
    classes = np.asarray(model.classes_)
    pred = classes[np.argmax(proba, axis=1)]
    out = {"accuracy": float(accuracy_score(y, pred))}
    if len(classes) == 2:
        out["f1"] = float(f1_score(y, pred, pos_label=classes[1], average="binary", zero_division=0))
    else:
        out["f1"] = float(f1_score(y, pred, average="macro", zero_division=0))
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
        else:
            out["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    except ValueError:  # a class absent from y: AUC is undefined
        out["roc_auc"] = math.nan
    out["log_loss"] = float(log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes))
    return out
