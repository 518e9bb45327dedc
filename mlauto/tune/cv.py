"""k-fold cross-validation for trials on small data: a 20% holdout of a few thousand rows picks configs
by noise, so below ``tune.cv_max_rows`` rows every trial scores by k folds of training + validation.

The search data is then ``(X, y, folds)``: the matrices once and the fold indices once, placed in the
object store together by ``run_search`` (``tune.with_parameters``), never per trial.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

Folds = list[tuple[np.ndarray, np.ndarray]]


def use_cv(n_rows: int, folds: int, max_rows: int) -> bool:
    """Whether trials on ``n_rows`` training + validation rows score by ``folds``-fold CV."""
    return folds >= 2 and n_rows <= max_rows


def make_folds(y: np.ndarray, task: str, k: int, seed: int) -> Folds:
    """Seeded folds: stratified on the class for classification (where every class has k rows)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if task != "regression" and np.unique(y, return_counts=True)[1].min() >= k:
        splitter: Any = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed)
    return [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in splitter.split(np.zeros(len(y)), y)]


def cv_data(data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], task: str, k: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray, Folds]:
    """The holdout data (train, validation) as one matrix with its folds."""
    X = np.concatenate([data[0], data[2]])
    y = np.concatenate([data[1], data[3]])
    return X, y, make_folds(y, task, k, seed)


def cross_validate(build: Callable[[], Any], data: tuple[np.ndarray, np.ndarray, Folds],
                   report: Callable[..., dict[str, Any]], fit_kwargs: Callable[[Any, np.ndarray, np.ndarray], dict]
                   ) -> dict[str, Any]:
    """Fit a fresh model per fold, score it on the fold's rows; the report's metrics are the fold means,
    with ``score_std`` (std over folds) and ``folds`` beside them."""
    X, y, folds = data
    start = time.perf_counter()
    reports = []
    for tr, va in folds:
        model = build()
        model.fit(X[tr], y[tr], **fit_kwargs(model, X[va], y[va]))
        reports.append(report(model, X[va], y[va]))
    numeric = {k for k, v in reports[0].items() if isinstance(v, (int, float))}
    out = {k: float(np.mean([r[k] for r in reports])) for k in numeric}
    out["score_std"] = float(np.std([r["score"] for r in reports]))
    out["folds"] = len(folds)
    out["train_seconds"] = time.perf_counter() - start
    out["n_train"] = int(np.mean([len(tr) for tr, _ in folds]))
    return out
