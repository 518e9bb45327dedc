"""LightGBM with mlauto's trial protocol: rounds early-stopped on the trial's validation split, and the
validation score reported to Tune only at a scheduler's rungs (``on_epoch``), not every round.

Imported when a LightGBM model is built (``mlauto/models/families/lightgbm.py`` names it by string), so
a search without LightGBM never loads it.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor, early_stopping

from mlauto.models.rounds import EARLY_STOPPING_ROUNDS, rung_rounds


class _Partial:
    """The booster after ``k`` rounds with a classifier's or regressor's face, for scoring mid-training."""

    def __init__(self, booster: Any, k: int, classes: np.ndarray | None) -> None:
        self.booster, self.k, self.classes_ = booster, k, classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.booster.predict(X, num_iteration=self.k)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return self.booster.predict(X, num_iteration=self.k)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _rung_callback(on_epoch: Callable[[int, Any], Any], n_rounds: int, rungs: Sequence[int],
                   classes: np.ndarray | None) -> Callable[[Any], None]:
    at = rung_rounds(n_rounds, rungs)

    def callback(env: Any) -> None:
        done = env.iteration + 1
        if done in at:
            on_epoch(at[done], _Partial(env.model, done, classes))

    callback.order = 30  # after early stopping's bookkeeping
    return callback


def _fit(model: Any, parent: Any, X: np.ndarray, y: np.ndarray, on_epoch: Callable | None,
         validation: tuple[np.ndarray, np.ndarray] | None) -> Any:
    callbacks, kwargs = [], {}
    if model.categorical_columns:  # ordinal codes split as categories (negative codes: missing)
        kwargs["categorical_feature"] = [int(c) for c in model.categorical_columns]
    if validation is not None:
        # eval_set, though lightgbm 4.7 deprecates it: its classifier label-encodes eval_set's labels,
        # not eval_y's (string classes would fail there)
        kwargs["eval_set"] = [validation]
        callbacks.append(early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False))
    if on_epoch is not None and validation is not None:
        classes = np.unique(y) if isinstance(model, LGBMClassifier) else None
        callbacks.append(_rung_callback(on_epoch, int(model.n_estimators), model.rungs, classes))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eval_set.*deprecated", category=Warning)
        parent.fit(model, X, y, callbacks=callbacks, **kwargs)
    # rounds kept: early stopping's best, or every round when it did not stop (or had no validation)
    best = getattr(model, "best_iteration_", 0) or 0
    model.n_rounds_ = int(best) if best > 0 else int(model.n_estimators)
    model.stopped_early_ = bool(validation is not None and 0 < best < model.n_estimators)
    return model


class BoostedClassifier(LGBMClassifier):
    """LGBMClassifier; ``fit(X, y, on_epoch=..., validation=(X_va, y_va))`` early-stops on ``validation``
    and calls ``on_epoch(unit, model)`` at the units in ``rungs``. ``categorical_columns``: the columns
    (ordinal codes) LightGBM splits as categories, not as numbers (native categorical handling)."""

    def __init__(self, rungs: Sequence[int] = (), categorical_columns: Sequence[int] = (), **params: Any) -> None:
        super().__init__(**params)
        self.rungs = tuple(rungs)
        self.categorical_columns = tuple(categorical_columns)

    def fit(self, X: Any, y: Any, on_epoch: Callable | None = None,  # type: ignore[override]
            validation: tuple[np.ndarray, np.ndarray] | None = None) -> "BoostedClassifier":
        return _fit(self, LGBMClassifier, X, y, on_epoch, validation)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep), "rungs": self.rungs, "categorical_columns": self.categorical_columns}


class BoostedRegressor(LGBMRegressor):
    """LGBMRegressor with the same early stopping and rung reports as :class:`BoostedClassifier`."""

    def __init__(self, rungs: Sequence[int] = (), categorical_columns: Sequence[int] = (), **params: Any) -> None:
        super().__init__(**params)
        self.rungs = tuple(rungs)
        self.categorical_columns = tuple(categorical_columns)

    def fit(self, X: Any, y: Any, on_epoch: Callable | None = None,  # type: ignore[override]
            validation: tuple[np.ndarray, np.ndarray] | None = None) -> "BoostedRegressor":
        return _fit(self, LGBMRegressor, X, y, on_epoch, validation)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep), "rungs": self.rungs, "categorical_columns": self.categorical_columns}
