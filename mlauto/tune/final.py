"""The served model: the winning trial's config refit on the rows ``tune.refit`` names, scored honestly.

``train``: refit on the training split, the model the leaderboard scored. ``train_val`` (default): refit
on training + validation rows, so the 20% validation split reaches the served model; the test split is
still unseen, so its score is honest. ``all``: refit on every row; the test score then comes from the
``train_val`` refit (a model that never saw the test rows), a different model from the served one, and
both are reported. Early-stopped rounds or epochs are scaled to the larger data
(:meth:`Family.refit_params`).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlauto.models import FAMILIES, build_estimator, point_categorical
from mlauto.tune.metrics import evaluate

if TYPE_CHECKING:  # hints only: a trial actor imports mlauto.tune and needs neither
    from mlauto.data import Splits
    from mlauto.features import Preprocessor

logger = logging.getLogger(__name__)

REFITS = ("train", "train_val", "all")


@dataclass
class FinalModel:
    pipeline: Pipeline  # steps: "prep" (fitted Preprocessor) and "model": the served model
    family: str
    params: dict[str, Any]  # the chosen config (as searched; a refit may pin its rounds, see refit_note)
    val_metrics: dict[str, float]  # the training-split fit on validation rows: the leaderboard's number
    test_metrics: dict[str, float]  # from a model that never saw the test rows (see test_from)
    train_seconds: float
    val_rows: int = 0  # rows behind val_metrics: the monitor's error-rate CUSUM sizes its threshold by it
    refit: str = "train"
    rows_seen: dict[str, int] = field(default_factory=dict)  # split -> rows the served model was fitted on
    test_from: str = "served"  # "served", or "train_val refit" when the served model saw the test rows (all)
    served_test_metrics: dict[str, float] | None = None  # refit=all: the served model on test rows it saw
    refit_note: str | None = None  # how early-stopped rounds/epochs were scaled for the refit

    def lineage(self) -> dict[str, str]:
        """MLflow tags: which rows the served model and the test estimate's model saw."""
        tags = {"mlauto.refit": self.refit,
                "mlauto.served_rows": ", ".join(f"{k}={v}" for k, v in self.rows_seen.items()),
                "mlauto.test_estimate_from": self.test_from}
        if self.refit_note:
            tags["mlauto.refit_note"] = self.refit_note
        if self.served_test_metrics:
            tags.update({f"mlauto.served_test_{k}_seen_rows": f"{v:.6g}" for k, v in self.served_test_metrics.items()})
        return tags


def _fit(prep: Preprocessor, frame: pd.DataFrame, splits: Splits, model: Any,
         X: np.ndarray | None = None) -> Pipeline:
    """``prep`` and ``model`` fitted on ``frame`` (``X``: its matrix when ``prep`` is already fitted)."""
    features, target = splits.features, splits.target
    if X is None:
        X = prep.fit_transform(frame[features], frame[target])
    point_categorical(model, getattr(prep, "category_codes_", ()))
    model.fit(X, frame[target].to_numpy())
    return Pipeline([("prep", prep), ("model", model)])


def _refit(prep: Preprocessor, frame: pd.DataFrame, splits: Splits, family: str, params: dict[str, Any],
           seed: int, task: str) -> Pipeline:
    """A fresh preprocessor and model of the config, fitted on ``frame``."""
    return _fit(clone(prep), frame, splits, build_estimator(family, params, seed, task))


def _final_step(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def fit_final(prep: Preprocessor, family: str, params: dict[str, Any], splits: Splits, seed: int,
              X_train: np.ndarray | None = None, task: str = "binary", refit: str = "train") -> FinalModel:
    """First the trial's fit (training split, same params and seed): its validation score matches the
    leaderboard and its early stopping says how long to train; then the refit ``refit`` asks for.

    ``X_train``: the training matrix the trials saw (``prep.fit_transform``: cross-fitted target
    encodings); by default ``prep.transform`` of the training split. ``prep`` is fitted on training rows.
    """
    if refit not in REFITS:
        raise ValueError(f"unknown refit {refit!r}; valid: {', '.join(REFITS)}")
    features, target = splits.features, splits.target
    start = time.perf_counter()
    if X_train is None:
        X_train = prep.transform(splits.train[features])
    model = build_estimator(family, params, seed, task)
    if "validation" in inspect.signature(_final_step(model).fit).parameters and not isinstance(model, Pipeline):
        # as in the trial: early stopping on the validation split picks the rounds the refit scales
        model.fit(X_train, splits.train[target].to_numpy(),
                  validation=(prep.transform(splits.val[features]), splits.val[target].to_numpy()))
        on_train = Pipeline([("prep", prep), ("model", model)])
    else:
        on_train = _fit(prep, splits.train, splits, model, X_train)
    val = evaluate(on_train, splits.val[features], splits.val[target].to_numpy(), task)

    def test_on(pipe: Pipeline) -> dict[str, float]:
        return evaluate(pipe, splits.test[features], splits.test[target].to_numpy(), task)

    if refit == "train" or not len(splits.val):
        return FinalModel(on_train, family, params, val, test_on(on_train), time.perf_counter() - start,
                          val_rows=len(splits.val), refit=refit, rows_seen={"train": len(splits.train)})
    fam = FAMILIES.get(family)() if isinstance(family, str) else family()
    n_train = len(splits.train)
    train_val = pd.concat([splits.train, splits.val], ignore_index=True)
    tv_params, note = fam.refit_params(params, _final_step(model), len(train_val) / n_train)
    on_train_val = _refit(prep, train_val, splits, family, tv_params, seed, task)
    test = test_on(on_train_val)
    if refit == "train_val":
        if note:
            logger.info("refit on train+val (%d rows): %s", len(train_val), note)
        return FinalModel(on_train_val, family, params, val, test, time.perf_counter() - start,
                          val_rows=len(splits.val), refit=refit,
                          rows_seen={"train": n_train, "val": len(splits.val)}, refit_note=note)
    every = pd.concat([train_val, splits.test], ignore_index=True)
    all_params, note = fam.refit_params(params, _final_step(model), len(every) / n_train)
    served = _refit(prep, every, splits, family, all_params, seed, task)
    seen = test_on(served)
    logger.info("refit on every row (%d)%s; the test score comes from the train+val refit, which never saw "
                "the test rows (the served model scores %s on them, seen in training)",
                len(every), f": {note}" if note else "", {k: round(v, 4) for k, v in seen.items()})
    return FinalModel(served, family, params, val, test, time.perf_counter() - start, val_rows=len(splits.val),
                      refit=refit, rows_seen={"train": n_train, "val": len(splits.val), "test": len(splits.test)},
                      test_from="train_val refit", served_test_metrics=seen, refit_note=note)
