"""XGBoost with mlauto's trial protocol (:mod:`mlauto.models.rounds`): rounds early-stopped on the trial's
validation split, the validation score reported to Tune only at a scheduler's rungs.

What the plain ``XGBClassifier`` lacks, added here: class labels of any type (XGBoost wants 0..k-1),
and native categorical splits on ordinal codes given as a NumPy matrix, where XGBoost refuses a code
that is negative (mlauto's "unknown") or beyond the training categories: those become missing.

Imported when an XGBoost model is built (``mlauto/models/families/xgboost.py`` names it by string).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from sklearn.preprocessing import LabelEncoder
from xgboost import XGBClassifier, XGBRegressor
from xgboost.callback import TrainingCallback

from mlauto.models.rounds import EARLY_STOPPING_ROUNDS, rung_rounds


class _Rungs(TrainingCallback):
    """Calls ``on_epoch(unit, partial)`` after the rounds that end a rung."""

    def __init__(self, on_epoch: Callable[[int, Any], Any], at: dict[int, int], face: Any) -> None:
        super().__init__()
        self.on_epoch, self.at, self.face = on_epoch, at, face

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        done = epoch + 1
        if done in self.at:
            self.on_epoch(self.at[done], _Partial(model, done, self.face))
        return False  # never stops training itself: Tune ends a stopped trial


class _Partial:
    """The booster after ``k`` rounds, with the model's classifier or regressor face."""

    def __init__(self, booster: Any, k: int, face: Any) -> None:
        self.booster, self.k, self.face = booster, k, face
        self.classes_ = getattr(face, "label_encoder_", None) and face.label_encoder_.classes_

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(_codes(self.face, X), iteration_range=(0, self.k))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self._raw(X)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return self._raw(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _codes(model: Any, X: Any) -> np.ndarray:
    """``X`` with each categorical code XGBoost would refuse (negative: unknown; unseen in training) made
    missing, which its categorical splits route like any missing value."""
    X = np.asarray(X, dtype=np.float64)
    if not model.categorical_columns:
        return X
    X = X.copy()
    for j, n in zip(model.categorical_columns, model.n_categories_):
        col = X[:, j]
        col[(col < 0) | (col >= n) | (col != np.floor(col))] = np.nan
    return X


def _boost(model: Any, parent: type, X: Any, y: np.ndarray, on_epoch: Callable | None,
           validation: tuple[np.ndarray, np.ndarray] | None, y_va: np.ndarray | None) -> Any:
    """``parent.fit`` with early stopping on ``validation`` and rung reports; the fitted model keeps its
    plain params (it pickles, and a refit without validation runs)."""
    cats = tuple(int(c) for c in model.categorical_columns)
    rounds = int(model.n_estimators or 100)  # XGBoost's default when it is None
    X = np.asarray(X, dtype=np.float64)
    # categories per column: the training codes' range (an unseen code is then missing)
    model.n_categories_ = [int(np.max(X[:, j][X[:, j] >= 0], initial=-1)) + 1 for j in cats]
    X = _codes(model, X)
    saved = model.early_stopping_rounds, model.callbacks
    kwargs: dict[str, Any] = {"verbose": False}
    if cats:
        model.feature_types = ["c" if j in cats else "q" for j in range(X.shape[1])]
        model.enable_categorical = True
    if validation is not None:
        kwargs["eval_set"] = [(_codes(model, validation[0]), y_va)]
        model.early_stopping_rounds = EARLY_STOPPING_ROUNDS
        if on_epoch is not None:
            model.callbacks = [_Rungs(on_epoch, rung_rounds(rounds, model.rungs), model)]
    try:
        parent.fit(model, X, y, **kwargs)
    finally:
        model.early_stopping_rounds, model.callbacks = saved
    best = getattr(model, "best_iteration", None) if validation is not None else None
    model.n_rounds_ = int(best) + 1 if best is not None else rounds
    model.stopped_early_ = bool(best is not None and model.n_rounds_ < rounds)
    return model


def _xgb_params(params: dict[str, Any]) -> dict[str, Any]:
    """The booster's params without mlauto's (XGBoost would warn that they are not used)."""
    return {k: v for k, v in params.items() if k not in ("rungs", "categorical_columns")}


class XGBoostClassifier(XGBClassifier):
    """XGBClassifier; ``fit(X, y, on_epoch=..., validation=(X_va, y_va))`` early-stops on ``validation``
    and calls ``on_epoch(unit, model)`` at the units in ``rungs``. ``categorical_columns``: the columns
    (ordinal codes) split as categories. Labels may be any type (strings included).

    ``__init__``/``get_params`` repeat LightGBM's wrappers' on purpose: a shared mixin would be
    ``__bases__[0]``, and XGBoost's ``get_params`` walks ``__bases__[0]`` to find its own parameters."""

    def __init__(self, rungs: Sequence[int] = (), categorical_columns: Sequence[int] = (), **params: Any) -> None:
        super().__init__(**params)
        self.rungs = tuple(rungs)
        self.categorical_columns = tuple(categorical_columns)

    def fit(self, X: Any, y: Any, on_epoch: Callable | None = None,  # type: ignore[override]
            validation: tuple[np.ndarray, np.ndarray] | None = None) -> "XGBoostClassifier":
        self.label_encoder_ = LabelEncoder().fit(np.asarray(y))
        self.__dict__.pop("labels_", None)  # XGBoost's fit checks classes_ against 0..k-1
        y_va = None if validation is None else self._encode(validation[1])
        _boost(self, XGBClassifier, X, self.label_encoder_.transform(np.asarray(y)), on_epoch, validation, y_va)
        self.labels_ = self.label_encoder_.classes_
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The labels as given (XGBoost's own are 0..k-1, which its fit checks)."""
        labels = self.__dict__.get("labels_")
        return labels if labels is not None else np.arange(self.n_classes_)

    def _encode(self, y: Any) -> np.ndarray:
        """Validation labels as codes; a class the training rows lack cannot be scored by logloss: it is
        mapped to the first class (the rounds early stopping keeps barely move for a few such rows)."""
        y = np.asarray(y)
        known = np.isin(y, self.label_encoder_.classes_)
        return self.label_encoder_.transform(np.where(known, y, self.label_encoder_.classes_[0]))

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:  # type: ignore[override]
        return super().predict_proba(_codes(self, X), **kwargs)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:  # type: ignore[override]
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep), "rungs": self.rungs, "categorical_columns": self.categorical_columns}

    def get_xgb_params(self) -> dict[str, Any]:
        return _xgb_params(super().get_xgb_params())


class XGBoostRegressor(XGBRegressor):
    """XGBRegressor with the same early stopping, rung reports and categorical columns."""

    def __init__(self, rungs: Sequence[int] = (), categorical_columns: Sequence[int] = (), **params: Any) -> None:
        super().__init__(**params)
        self.rungs = tuple(rungs)
        self.categorical_columns = tuple(categorical_columns)

    def fit(self, X: Any, y: Any, on_epoch: Callable | None = None,  # type: ignore[override]
            validation: tuple[np.ndarray, np.ndarray] | None = None) -> "XGBoostRegressor":
        y_va = None if validation is None else np.asarray(validation[1], dtype=np.float64)
        return _boost(self, XGBRegressor, X, np.asarray(y, dtype=np.float64), on_epoch, validation, y_va)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:  # type: ignore[override]
        return super().predict(_codes(self, X), **kwargs)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep), "rungs": self.rungs, "categorical_columns": self.categorical_columns}

    def get_xgb_params(self) -> dict[str, Any]:
        return _xgb_params(super().get_xgb_params())
