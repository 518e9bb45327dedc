"""Top-k ensembles of searched configs: soft voting or stacking, as plain scikit-learn estimators.

They sit in the registered Pipeline as the "model" step, so they pickle, serve and monitor like any
single family.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import StackingClassifier, StackingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from mlauto.config.schema import EnsembleMethod
from mlauto.errors import MlautoError


class SoftVoteEnsemble(BaseEstimator):
    """Mean of the members' class probabilities (classification) or predictions (regression).

    ``prefit=True`` takes members already fitted on the same training data (the selection step fits
    them once to score each alone, then reuses them); otherwise ``fit`` fits clones.
    """

    def __init__(self, estimators: Sequence[BaseEstimator] = (), task: str = "binary", prefit: bool = False) -> None:
        self.estimators = estimators
        self.task = task
        self.prefit = prefit

    def fit(self, X: Any, y: Any) -> "SoftVoteEnsemble":
        if not self.estimators:
            raise MlautoError("SoftVoteEnsemble needs at least one estimator")
        if self.prefit:
            for est in self.estimators:
                check_is_fitted(est)
            self.estimators_ = list(self.estimators)
        else:
            self.estimators_ = [clone(est).fit(X, y) for est in self.estimators]
        if self.task != "regression":
            self.classes_ = np.asarray(self.estimators_[0].classes_)
            for est in self.estimators_[1:]:
                if not np.array_equal(np.asarray(est.classes_), self.classes_):
                    raise MlautoError("ensemble members were fitted on different classes; fit them on the same y")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression ensemble has no predict_proba")
        check_is_fitted(self, "estimators_")
        return np.mean([np.asarray(est.predict_proba(X), dtype=float) for est in self.estimators_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        if self.task == "regression":
            return np.mean([np.asarray(est.predict(X), dtype=float) for est in self.estimators_], axis=0)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):  # noqa: ANN204 - sklearn's Tags type
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.task == "regression" else "classifier"
        return tags


class WeightedEnsemble(SoftVoteEnsemble):
    """Weighted mean of the members' probabilities or predictions: Caruana's ensemble selection picks the
    weights (:func:`caruana_weights`); members with weight 0 are left out before it is built."""

    def __init__(self, estimators: Sequence[BaseEstimator] = (), weights: Sequence[float] = (), task: str = "binary",
                 prefit: bool = False) -> None:
        super().__init__(estimators, task=task, prefit=prefit)
        self.weights = weights

    def _mean(self, outputs: list[np.ndarray]) -> np.ndarray:
        w = np.asarray(self.weights, dtype=float)
        return np.tensordot(w / w.sum(), np.asarray(outputs, dtype=float), axes=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression ensemble has no predict_proba")
        check_is_fitted(self, "estimators_")
        return self._mean([np.asarray(est.predict_proba(X), dtype=float) for est in self.estimators_])

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        if self.task == "regression":
            return self._mean([np.asarray(est.predict(X), dtype=float) for est in self.estimators_])
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def caruana_weights(outputs: Sequence[np.ndarray], score: Any, mode: str, rounds: int = 25) -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al. 2004): start from the best member, then
    add, ``rounds`` times, the member whose addition scores best; the weights are the counts.

    ``outputs``: each member's out-of-fold probabilities or predictions, row-aligned; ``score(mean output)``
    is the metric, higher better when ``mode`` is max. Stops early when no addition improves the score.
    """
    sign = 1.0 if mode == "max" else -1.0
    counts = np.zeros(len(outputs))
    total = np.zeros_like(np.asarray(outputs[0], dtype=float))
    best = -np.inf
    for _ in range(rounds):
        n = counts.sum()
        trial = [sign * score((total + out) / (n + 1)) for out in outputs]
        pick = int(np.argmax(trial))
        if trial[pick] <= best and n > 0:
            break
        best = trial[pick]
        counts[pick] += 1
        total = total + np.asarray(outputs[pick], dtype=float)
    return counts


def build_ensemble(method: str, members: Sequence[BaseEstimator], *, task: str = "binary", seed: int = 0,
                   cv: int = 3, prefit: bool = False) -> BaseEstimator:
    """An unfitted ensemble over ``members``.

    stacking refits the members on ``cv`` folds and trains a linear meta-model on their out-of-fold
    outputs (logistic regression on probabilities, or ridge for regression), so the meta-model never
    sees a member's predictions on its own training rows.
    """
    if method == "soft_vote":
        return SoftVoteEnsemble(list(members), task=task, prefit=prefit)
    if method == "stacking":
        named = [(f"m{i}", est) for i, est in enumerate(members)]
        if task == "regression":
            return StackingRegressor(named, final_estimator=RidgeCV(), cv=KFold(cv, shuffle=True, random_state=seed))
        return StackingClassifier(named, final_estimator=LogisticRegression(max_iter=1000),
                                  cv=StratifiedKFold(cv, shuffle=True, random_state=seed), stack_method="predict_proba")
    raise MlautoError(f"unknown ensemble method {method!r}; valid: {', '.join(EnsembleMethod.values()[1:])}")


__all__ = ["SoftVoteEnsemble", "WeightedEnsemble", "build_ensemble", "caruana_weights"]
