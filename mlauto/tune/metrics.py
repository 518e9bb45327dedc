"""Metrics computed the same way for trials, the final model and the monitor, for every task.

Which metrics a task has, and their direction, is :mod:`mlauto.tasks`.
"""

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


def evaluate(model: Any, X: Any, y: Any, task: str) -> dict[str, float]:
    """Every metric of ``task`` (see :data:`mlauto.tasks.TASKS`) for a fitted model."""
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
