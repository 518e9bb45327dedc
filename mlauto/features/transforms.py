"""Named, reusable feature transforms, composed by name in ``conf/features/*.yaml``.

Each transform takes the DataFrame of the columns its step selected and returns a DataFrame of
named output columns; the :class:`~mlauto.features.preprocess.Preprocessor` replaces the inputs with
the outputs. They keep scikit-learn's contract (``__init__`` stores options, ``fit`` returns self,
learned state ends in ``_``), so they pickle into the saved model and serve with the same code.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)

from mlauto.errors import ConfigError, DataError
from mlauto.registry import Registry

MISSING = "__missing__"
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
#: what every step may set besides its transform's options
STEP_KEYS = ("name", "columns", "exclude", "min_unique")

TRANSFORMS: Registry["Transform"] = Registry("feature transform", "features.steps.name")


def is_numeric(series: pd.Series) -> bool:
    """Numbers, not booleans: booleans are encoded like categories (as today)."""
    return is_numeric_dtype(series) and not is_bool_dtype(series)


def is_datetime(series: pd.Series) -> bool:
    """numpy, zoned and Arrow (Parquet snapshot) timestamps alike."""
    return is_datetime64_any_dtype(series) or getattr(series.dtype, "kind", "") == "M"


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain strings, with missing values as their own category."""
    return frame.astype(object).where(frame.notna(), MISSING).astype(str)


def as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric inputs as float64; a request's ``None`` becomes NaN."""
    try:
        return frame.astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"columns {list(frame.columns)} must be numeric for this transform: {exc}") from exc


def import_path(path: str) -> Callable[..., Any]:
    """``pkg.mod.fn`` -> the function; a bad path fails naming it."""
    module_name, _, attr = str(path).rpartition(".")
    if not module_name:
        raise ConfigError("features.steps.path", path, "a dotted path such as my_pkg.my_mod.fn")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("features.steps.path", path, "an importable dotted path such as my_pkg.my_mod.fn",
                          f"cannot import it: {exc}") from exc
    if not callable(fn):
        raise ConfigError("features.steps.path", path, "a callable", f"{path} is a {type(fn).__name__}")
    return fn


class Transform(BaseEstimator, TransformerMixin):
    """Base class: DataFrame in, DataFrame of named columns out, on the same index."""

    #: selector used when a step gives no ``columns``
    default_columns = "numeric"

    @classmethod
    def options(cls) -> list[str]:
        """The option names a step may set (the constructor's arguments)."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def fit(self, X: pd.DataFrame, y: Any = None) -> "Transform":
        self.fit_transform(X, y)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = self._transform(X if list(X.columns) == self.columns_in_ else X[self.columns_in_])
        if [str(c) for c in out.columns] != self.names_out_:
            raise DataError(f"{type(self).__name__} on {self.columns_in_} gave columns {list(out.columns)}, "
                            f"not the {self.names_out_} it gave at fit; its output must not depend on the rows")
        out.index = X.index
        return out

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit on the training columns; the output names seen here are the ones every later call must give."""
        self.columns_in_ = [str(c) for c in X.columns]
        self._fit(X, y)
        out = self._transform(X)
        self.names_out_ = [str(c) for c in out.columns]
        out.index = X.index
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.names_out_, dtype=object)

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        """Learn state from the training columns; stateless transforms do nothing."""

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError


class _Sklearn(Transform):
    """Wraps one fitted scikit-learn transformer; output names from the transformer."""

    categorical_output = False  # discrete outputs (one-hot, codes): the drift detectors test them as categories
    codes_output = False

    def _make(self) -> Any:
        raise NotImplementedError

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return as_float(X)

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        self.transformer_ = self._make()
        self.transformer_.fit(self._prepare(X), y)

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        values = self.transformer_.transform(self._prepare(X))
        names = [str(n) for n in self.transformer_.get_feature_names_out()]
        return pd.DataFrame(np.asarray(values), columns=names, index=X.index)


@TRANSFORMS.register("impute")
class Impute(_Sklearn):
    """Fill missing values with a statistic learned on train (numbers) or the most frequent/constant value."""

    def __init__(self, strategy: str = "median", fill_value: Any = None) -> None:
        self.strategy = strategy
        self.fill_value = fill_value

    def _make(self) -> SimpleImputer:
        return SimpleImputer(strategy=self.strategy, fill_value=self.fill_value, keep_empty_features=True)

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        self.numeric_ = all(is_numeric(X[c]) for c in X.columns)
        if not self.numeric_ and self.strategy in ("mean", "median"):
            raise ConfigError("features.steps.strategy", self.strategy, ["most_frequent", "constant"],
                              f"columns {list(X.columns)} are not all numeric")
        super()._fit(X, y)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        if self.numeric_:
            return as_float(X)
        return X.astype(object).where(X.notna(), np.nan)


@TRANSFORMS.register("scale")
class Scale(_Sklearn):
    """Standardise (``standard``), rescale to [0, 1] (``minmax``) or by median/IQR (``robust``)."""

    METHODS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}

    def __init__(self, method: str = "standard") -> None:
        self.method = method

    def _make(self) -> Any:
        if self.method not in self.METHODS:
            raise ConfigError("features.steps.method", self.method, sorted(self.METHODS))
        return self.METHODS[self.method]()


@TRANSFORMS.register("onehot")
class OneHot(_Sklearn):
    """One 0/1 column per category seen in train; rare ones pooled, unseen ones all zero."""

    default_columns = "categorical"
    categorical_output = True

    def __init__(self, max_categories: int | None = 50, min_frequency: int | float | None = None) -> None:
        self.max_categories = max_categories
        self.min_frequency = min_frequency

    def _make(self) -> OneHotEncoder:
        return OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=self.max_categories,
                             min_frequency=self.min_frequency, sparse_output=False)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return as_category_strings(X)


@TRANSFORMS.register("ordinal")
class Ordinal(_Sklearn):
    """One integer code per category (sorted); unseen categories get ``unknown_value``."""

    default_columns = "categorical"
    categorical_output = True
    codes_output = True  # one integer code per category: a booster can split it as a category

    def __init__(self, unknown_value: int = -1) -> None:
        self.unknown_value = unknown_value

    def _make(self) -> OrdinalEncoder:
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=self.unknown_value)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return as_category_strings(X)


@TRANSFORMS.register("target")
class Target(_Sklearn):
    """Target encoding for high-cardinality columns (scikit-learn's ``TargetEncoder``).

    ``fit_transform`` returns cross-fitted encodings (each row encoded by folds that did not see it),
    which is what later steps and feature selection are fitted on; ``transform`` uses the full fit.
    """

    default_columns = "categorical"

    def __init__(self, smooth: Any = "auto", cv: int = 5, random_state: int = 0) -> None:
        self.smooth = smooth
        self.cv = cv
        self.random_state = random_state

    def _make(self, y: np.ndarray) -> TargetEncoder:
        from sklearn.model_selection import KFold, StratifiedKFold
        from sklearn.utils.multiclass import type_of_target

        folds = KFold if type_of_target(y) == "continuous" else StratifiedKFold
        return TargetEncoder(smooth=self.smooth, cv=folds(int(self.cv), shuffle=True, random_state=self.random_state))

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return as_category_strings(X)

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        if y is None:
            raise DataError("target encoding needs the target: fit the Preprocessor with (X, y)")
        self.transformer_ = self._make(np.asarray(y))
        self.cross_fitted_ = self.transformer_.fit_transform(self._prepare(X), np.asarray(y))

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        self.columns_in_ = [str(c) for c in X.columns]
        self._fit(X, y)
        self.names_out_ = [str(n) for n in self.transformer_.get_feature_names_out()]
        out = pd.DataFrame(self.cross_fitted_, columns=self.names_out_, index=X.index)
        del self.cross_fitted_  # not saved with the model
        return out


@TRANSFORMS.register("datetime")
class DatetimeParts(Transform):
    """Calendar parts (year, month, day, dayofweek, hour) of a datetime or a parseable-string column.

    Strings are parsed the same way at training and serving; unparseable values give NaN parts.
    """

    default_columns = "datetime"

    def __init__(self, parts: Sequence[str] = DATETIME_PARTS) -> None:
        self.parts = parts

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        bad = [p for p in self.parts if p not in DATETIME_PARTS]
        if bad or not self.parts:
            raise ConfigError("features.steps.parts", list(self.parts), DATETIME_PARTS)
        for col in X.columns:
            if X[col].notna().any() and self._parse(X[col]).isna().all():
                raise DataError(f"column {col!r} holds no parseable date/time values; remove it from the "
                                "datetime step or fix the data")

    @staticmethod
    def _parse(series: pd.Series) -> pd.Series:
        """Naive datetimes as they are; zoned ones and strings with an offset in UTC, the same on both paths."""
        if is_datetime(series):
            series = pd.to_datetime(series)  # numpy-backed, also for Arrow timestamps from a snapshot
        else:
            series = pd.to_datetime(series.astype(object).where(series.notna(), None), errors="coerce",
                                    format="mixed", utc=True)
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for col in X.columns:
            stamps = self._parse(X[col])
            for part in self.parts:
                out[f"{col}_{part}"] = getattr(stamps.dt, part).astype("float64")
        return pd.DataFrame(out, index=X.index)


@TRANSFORMS.register("log")
class Log(Transform):
    """``log1p``: negatives are refused naming the column (``negative: error``) or clipped to 0 (``clip``)."""

    def __init__(self, negative: str = "error") -> None:
        self.negative = negative

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        if self.negative not in ("error", "clip"):
            raise ConfigError("features.steps.negative", self.negative, ["error", "clip"])

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        values = as_float(X)
        negative = (values < 0).any()
        if self.negative == "error" and negative.any():
            cols = list(negative[negative].index)
            raise DataError(f"log1p needs values >= 0 but column(s) {cols} hold negatives (min "
                            f"{values[cols].min().min()}); set negative: clip on the log step, or drop them from it")
        return np.log1p(values.clip(lower=0.0))


@TRANSFORMS.register("clip")
class Clip(Transform):
    """Clip to fixed ``lower``/``upper`` bounds, or to ``quantiles`` [low, high] learned on train."""

    def __init__(self, lower: float | None = None, upper: float | None = None,
                 quantiles: Sequence[float] | None = None) -> None:
        self.lower = lower
        self.upper = upper
        self.quantiles = quantiles

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        values = as_float(X)
        if self.quantiles is not None:
            q = list(self.quantiles)
            if len(q) != 2 or not 0.0 <= q[0] < q[1] <= 1.0:
                raise ConfigError("features.steps.quantiles", q, "[low, high] with 0 <= low < high <= 1")
            if self.lower is not None or self.upper is not None:
                raise ConfigError("features.steps.quantiles", q, hint="give quantiles or lower/upper, not both")
            self.lower_ = values.quantile(q[0]).to_dict()
            self.upper_ = values.quantile(q[1]).to_dict()
        elif self.lower is None and self.upper is None:
            raise ConfigError("features.steps.lower/upper", None, hint="give lower and/or upper, or quantiles")
        else:
            if self.lower is not None and self.upper is not None and self.lower > self.upper:
                raise ConfigError("features.steps.lower/upper", (self.lower, self.upper), hint="need lower <= upper")
            self.lower_ = {c: self.lower for c in values.columns}
            self.upper_ = {c: self.upper for c in values.columns}

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        values = as_float(X)
        lower = pd.Series(self.lower_, dtype="float64").reindex(values.columns)
        upper = pd.Series(self.upper_, dtype="float64").reindex(values.columns)
        return values.clip(lower=lower, upper=upper, axis=1)


@TRANSFORMS.register("function")
class Function(Transform):
    """A user function by dotted path, applied as a stateless transform: ``fn(frame, **kwargs)``.

    It may return a DataFrame (its column names are kept), a Series, or an array with one column per
    input column (input names kept) or any other width (``<fn>_<i>``). It must be importable where
    the model is served.
    """

    default_columns = "all"

    def __init__(self, path: str = "", kwargs: dict[str, Any] | None = None) -> None:
        self.path = path
        self.kwargs = kwargs

    def _fit(self, X: pd.DataFrame, y: Any) -> None:
        self.func_ = import_path(self.path)

    def _transform(self, X: pd.DataFrame) -> pd.DataFrame:
        try:
            result = self.func_(X.copy(), **dict(self.kwargs or {}))
        except Exception as exc:
            raise DataError(f"feature function {self.path} failed on columns {list(X.columns)}: {exc}") from exc
        if isinstance(result, pd.Series):
            result = result.to_frame(str(result.name) if result.name is not None else self.path.rsplit(".", 1)[-1])
        if isinstance(result, pd.DataFrame):
            if len(result) != len(X):
                raise DataError(f"feature function {self.path} returned {len(result)} rows for {len(X)}")
            return result.set_axis(X.index, axis=0).rename(columns=str)
        values = np.asarray(result)
        values = values.reshape(len(X), -1) if values.ndim != 2 else values
        if values.shape[0] != len(X):
            raise DataError(f"feature function {self.path} returned {values.shape[0]} rows for {len(X)}")
        stem = self.path.rsplit(".", 1)[-1]
        names = list(X.columns) if values.shape[1] == X.shape[1] else [f"{stem}_{i}" for i in range(values.shape[1])]
        return pd.DataFrame(values, columns=names, index=X.index)


def transform_options() -> dict[str, list[str]]:
    """Transform name -> the keys its step may set: what config validation checks steps against."""
    return {name: [*STEP_KEYS[1:], *TRANSFORMS.get(name).options()] for name in TRANSFORMS.names()}
