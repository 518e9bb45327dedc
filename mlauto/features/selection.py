"""Automated feature selection, fitted on train only after the transforms: variance, mutual
information, model-based importance. Each keeps the ``k`` best-scored features and/or those
scoring at least ``threshold``; the scores are kept so the run can log them.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from mlauto.errors import ConfigError, DataError
from mlauto.registry import Registry

logger = logging.getLogger(__name__)

SELECTORS: Registry["Selector"] = Registry("feature selector", "features.selection.method")


class Selector(BaseEstimator):
    """Scores every feature, then keeps the top ``k`` and/or those with score >= ``threshold``."""

    needs_target = True

    def __init__(self, k: int | None = None, threshold: float | None = None, random_state: int = 0) -> None:
        self.k = k
        self.threshold = threshold
        self.random_state = random_state

    @classmethod
    def options(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def _scores(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: Any, names: list[str]) -> "Selector":
        if self.k is None and self.threshold is None:
            raise ConfigError("features.selection.k/threshold", None, hint=f"{type(self).__name__} needs k or threshold")
        if self.k is not None and int(self.k) < 1:
            raise ConfigError("features.selection.k", self.k, "an integer >= 1")
        if self.needs_target and y is None:
            raise DataError("feature selection by the target needs it: fit the Preprocessor with (X, y)")
        if np.isnan(X).any():
            bad = [n for n, col in zip(names, np.isnan(X).any(axis=0)) if col]
            raise DataError(f"features {bad} hold missing values at selection; add an impute step before it")
        self.scores_ = np.asarray(self._scores(X, None if y is None else np.asarray(y)), dtype=np.float64)
        keep = np.ones(len(names), dtype=bool)
        if self.threshold is not None:
            keep &= self.scores_ >= float(self.threshold)
            if not keep.any():
                best = int(np.argmax(self.scores_))
                raise DataError(f"no feature scored >= threshold {self.threshold} with {type(self).__name__} "
                                f"(best: {names[best]}={self.scores_[best]:.4g}); lower the threshold")
        if self.k is not None and keep.sum() > int(self.k):
            order = np.argsort(-np.where(keep, self.scores_, -np.inf), kind="stable")
            keep = np.zeros(len(names), dtype=bool)
            keep[order[: int(self.k)]] = True
        self.support_ = keep
        return self

    def report(self, names: list[str]) -> dict[str, Any]:
        """JSON-ready: method, options, each feature's score, the kept ones (best first)."""
        order = np.argsort(-self.scores_, kind="stable")
        return {
            "method": next(n for n in SELECTORS.names() if SELECTORS.get(n) is type(self)),
            "options": self.get_params(),
            "scores": {names[i]: float(self.scores_[i]) for i in order},
            "kept": [names[i] for i in order if self.support_[i]],
        }


def _codes(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1]


def _is_regression(y: np.ndarray) -> bool:
    """A numeric target with many distinct values: score features against it as a number, not classes."""
    from mlauto.tasks import detect_task

    return detect_task(y) == "regression"


@SELECTORS.register("variance")
class Variance(Selector):
    """Drop (near-)constant features: score = variance on train, kept when > ``threshold`` (default 0)."""

    needs_target = False

    def __init__(self, k: int | None = None, threshold: float | None = 0.0, random_state: int = 0) -> None:
        super().__init__(k, threshold, random_state)

    def fit(self, X: np.ndarray, y: Any, names: list[str]) -> "Variance":
        super().fit(X, y, names)
        if self.threshold is not None:  # strictly above: a constant feature never survives threshold 0
            self.support_ &= self.scores_ > float(self.threshold)
            if not self.support_.any():
                raise DataError(f"every feature has variance <= {self.threshold}; lower the variance threshold")
        return self

    def _scores(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        return X.var(axis=0)


@SELECTORS.register("mutual_info")
class MutualInfo(Selector):
    """Mutual information with the class, or a regression target (nats), estimated on at most
    ``max_rows`` training rows."""

    def __init__(self, k: int | None = None, threshold: float | None = None, random_state: int = 0,
                 max_rows: int = 20000) -> None:
        super().__init__(k, threshold, random_state)
        self.max_rows = max_rows

    def _scores(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

        rows = np.random.default_rng(self.random_state).permutation(len(X))[: self.max_rows]
        if _is_regression(np.asarray(y)):
            return mutual_info_regression(X[rows], np.asarray(y, dtype=float)[rows], random_state=self.random_state)
        return mutual_info_classif(X[rows], _codes(y)[rows], random_state=self.random_state)


@SELECTORS.register("model")
class ModelImportance(Selector):
    """Importance from a small model fitted on train: ``random_forest`` (impurity importance) or
    ``l1_logistic`` (|coefficient| on standardised features, summed over classes); on at most
    ``max_rows`` training rows. For a regression target: a random forest regressor, or a lasso
    (``alpha = 0.01 / C``) on the standardised target."""

    ESTIMATORS = ("random_forest", "l1_logistic")

    def __init__(self, k: int | None = None, threshold: float | None = None, random_state: int = 0,
                 estimator: str = "random_forest", n_estimators: int = 100, C: float = 0.1,
                 max_rows: int = 20000) -> None:
        super().__init__(k, threshold, random_state)
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.C = C
        self.max_rows = max_rows

    def _scores(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        rows = np.random.default_rng(self.random_state).permutation(len(X))[: self.max_rows]
        X, y = X[rows], np.asarray(y)[rows]
        regression = _is_regression(y)
        if self.estimator == "random_forest":
            from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

            forest = (RandomForestRegressor if regression else RandomForestClassifier)(
                n_estimators=self.n_estimators, min_samples_leaf=5, random_state=self.random_state, n_jobs=1)
            return forest.fit(X, y).feature_importances_
        if self.estimator == "l1_logistic":
            from sklearn.linear_model import Lasso, LogisticRegression
            from sklearn.preprocessing import StandardScaler

            if regression:
                y = np.asarray(y, dtype=float)
                lasso = Lasso(alpha=0.01 / self.C, random_state=self.random_state)
                lasso.fit(StandardScaler().fit_transform(X), (y - y.mean()) / (y.std() or 1.0))
                return np.abs(lasso.coef_)

            model = LogisticRegression(l1_ratio=1.0, C=self.C, solver="saga", max_iter=2000,
                                       random_state=self.random_state)
            model.fit(StandardScaler().fit_transform(X), y)
            return np.abs(model.coef_).sum(axis=0)
        raise ConfigError("features.selection.estimator", self.estimator, self.ESTIMATORS)


def selector_options() -> dict[str, list[str]]:
    """Selector name -> its option names (besides ``method``): what config validation checks against."""
    return {name: SELECTORS.get(name).options() for name in SELECTORS.names()}
