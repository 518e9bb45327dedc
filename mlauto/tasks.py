"""Tasks and metrics: which tasks exist, each task's metrics and the direction in which they improve,
the default metric of a task, and how a target's values give its task.

Layer 0: every stage may import this module (it imports only numpy and :mod:`mlauto.errors`), so the
facts live here once. Computing the metrics is :mod:`mlauto.tune.metrics`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlauto.errors import ConfigError

AUTO = "auto"  # tune.task / tune.metric: decided from the data
TASKS = ("binary", "multiclass", "regression")
# metric -> "max" or "min", the direction in which it gets better
CLASSIFICATION_METRICS = {"accuracy": "max", "f1": "max", "roc_auc": "max", "log_loss": "min"}
REGRESSION_METRICS = {"rmse": "min", "mae": "min", "r2": "max"}
METRICS = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
# Most distinct values a numeric target may have and still be read as classes.
MAX_CLASSES = 20


def task_metrics(task: str) -> dict[str, str]:
    """The metrics of ``task`` (metric -> direction)."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def metric_mode(metric: str) -> str:
    """max or min: the direction in which ``metric`` gets better."""
    if metric not in METRICS:
        raise ConfigError("tune.metric", metric, sorted(METRICS))
    return METRICS[metric]


def metric_for_task(metric: str, task: str) -> str:
    """The metric to optimize for a task: ``auto`` picks roc_auc (binary), accuracy (multiclass) or rmse.

    A metric of the other kind (rmse for a classifier) fails naming the ones that fit.
    """
    if task not in TASKS:
        raise ConfigError("tune.task", task, (AUTO, *TASKS))
    if metric == AUTO:
        return DEFAULT_METRIC[task]
    allowed = task_metrics(task)
    if metric not in allowed:
        raise ConfigError("tune.metric", metric, [AUTO, *sorted(allowed)],
                          f"the metric must fit the task, which is {task}")
    return metric


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
