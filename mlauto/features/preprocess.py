"""The fitted preprocessing pipeline: named transform steps, then feature selection, fitted on train only.

It travels inside the saved model, so training, batch scoring and serving share one code path.
Without ``steps`` it does what it always did: impute numeric columns, one-hot encode the rest.

Each step picks its columns by name or selector (``numeric``, ``categorical``, ``datetime``, ``all``)
on the frame as the previous steps left it, replaces them with its outputs (appended at the end),
and the columns no step touched pass through. Every column must be numeric at the end.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype
from sklearn.base import BaseEstimator, TransformerMixin

from mlauto import storage
from mlauto.errors import ConfigError, DataError
from mlauto.features.selection import SELECTORS, Selector
from mlauto.features.transforms import (
    STEP_KEYS,
    TRANSFORMS,
    Transform,
    as_category_strings,
    is_datetime,
    is_numeric,
)

logger = logging.getLogger(__name__)

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")

__all__ = ["Preprocessor", "as_category_strings", "default_steps", "infer_schema", "select_columns", "write_report"]



def infer_schema(frame: pd.DataFrame, max_categories: int) -> list[dict[str, Any]]:
    """Per-column type, nullability, range or categories: drives request validation at serving."""
    schema = []
    for col in frame.columns:
        series = frame[col]
        entry: dict[str, Any] = {"name": str(col), "nullable": bool(series.isna().any())}
        if is_numeric_dtype(series) and not is_bool_dtype(series):
            entry["type"] = "integer" if is_integer_dtype(series) else "number"
            finite = series.dropna()
            entry["min"] = float(finite.min()) if len(finite) else None
            entry["max"] = float(finite.max()) if len(finite) else None
        else:
            entry["type"] = "string"
            cats = series.dropna().astype(str).value_counts()
            entry["categories"] = [str(c) for c in cats.index[: max_categories * 4]]
        schema.append(entry)
    return schema


def is_iso_datetime_text(series: pd.Series, sample: int = 200) -> bool:
    """A text column whose values all look like ISO dates (``YYYY-MM-DD[ HH:MM[:SS]]``): CSV readers
    often leave these as strings, and the ``datetime`` selector should still find them."""
    if is_numeric_dtype(series) or is_bool_dtype(series) or is_datetime(series):
        return False
    values = series.dropna().head(sample)
    return bool(len(values)) and values.map(lambda v: isinstance(v, str) and bool(ISO_DATETIME.match(v))).all()


def default_steps(numeric_impute: str = "median", max_categories: int = 50) -> list[dict[str, Any]]:
    """Today's preprocessing as steps (``conf/features/default.yaml`` spells out the same)."""
    return [{"name": "impute", "columns": "numeric", "strategy": numeric_impute},
            {"name": "onehot", "columns": "categorical", "max_categories": max_categories}]


# A step's ``columns`` as a word (or a list of column names).
COLUMN_SELECTORS = ("numeric", "categorical", "datetime", "all")


def select_columns(frame: pd.DataFrame, spec: dict[str, Any], default: str, key: str) -> list[str]:
    """The columns a step applies to, resolved on the frame the earlier steps produced."""
    columns = spec.get("columns", default)
    if isinstance(columns, str):
        if columns == "numeric":
            chosen = [c for c in frame.columns if is_numeric(frame[c])]
        elif columns == "datetime":
            chosen = [c for c in frame.columns if is_datetime(frame[c]) or is_iso_datetime_text(frame[c])]
        elif columns == "categorical":
            chosen = [c for c in frame.columns if not is_numeric(frame[c])]
        elif columns == "all":
            chosen = list(frame.columns)
        else:
            raise ConfigError(f"{key}.columns", columns, [*COLUMN_SELECTORS, "a list of column names"])
    else:
        chosen = [str(c) for c in columns]
        missing = [c for c in chosen if c not in frame.columns]
        if missing:
            raise DataError(f"{key} names column(s) {missing} that are not in the data at that step; "
                            f"available: {list(frame.columns)}")
    exclude = {str(c) for c in spec.get("exclude") or []}
    chosen = [c for c in chosen if c not in exclude]
    if spec.get("min_unique") is not None:
        chosen = [c for c in chosen if frame[c].nunique() >= int(spec["min_unique"])]
    return chosen


def build_step(spec: dict[str, Any], key: str) -> Transform:
    """A transform from its config mapping; an unknown name or option fails naming it."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(key, spec, hint="each step is a mapping with a 'name'")
    cls = TRANSFORMS.get(spec["name"], key=f"{key}.name")
    options = {k: v for k, v in spec.items() if k not in STEP_KEYS}
    unknown = sorted(set(options) - set(cls.options()))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", options[unknown[0]], [*STEP_KEYS, *cls.options()],
                          f"unknown option of transform '{spec['name']}'")
    return cls(**options)


def build_selector(spec: dict[str, Any], key: str) -> Selector:
    if not isinstance(spec, dict) or "method" not in spec:
        raise ConfigError(key, spec, hint="each selection entry is a mapping with a 'method'")
    cls = SELECTORS.get(spec["method"], key=f"{key}.method")
    options = {k: v for k, v in spec.items() if k != "method"}
    unknown = sorted(set(options) - set(cls.options()))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", options[unknown[0]], ["method", *cls.options()],
                          f"unknown option of selector '{spec['method']}'")
    return cls(**options)


def _registered_name(step: Transform) -> str:
    return next((n for n in TRANSFORMS.names() if TRANSFORMS.get(n) is type(step)), type(step).__name__)


class Preprocessor(BaseEstimator, TransformerMixin):
    """Named transform steps then feature selection; learned state ends in ``_``.

    ``steps``: list of ``{name, columns, ...options}`` (None: impute numeric with ``numeric_impute``,
    one-hot the rest with ``max_categories``). ``selection``: list of ``{method, k, threshold, ...}``
    applied in order to the transformed features.
    """

    def __init__(self, numeric_impute: str = "median", max_categories: int = 50,
                 steps: list[dict[str, Any]] | None = None, selection: list[dict[str, Any]] | None = None) -> None:
        self.numeric_impute = numeric_impute
        self.max_categories = max_categories
        self.steps = steps
        self.selection = selection

    def fit(self, X: pd.DataFrame, y: Any = None) -> "Preprocessor":
        self._fit(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, and return the training features as the later steps saw them (target encodings cross-fitted)."""
        return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: Any) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("Preprocessor.fit expects a pandas DataFrame with named columns")
        if y is not None and len(y) != len(X):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        self.columns_ = [str(c) for c in X.columns]
        work = X.set_axis(self.columns_, axis=1)
        self.numeric_ = [c for c in self.columns_ if is_numeric(work[c])]
        self.categorical_ = [c for c in self.columns_ if c not in self.numeric_]
        self.schema_ = infer_schema(work, self.max_categories)
        y_values = None if y is None else np.asarray(y)
        specs = default_steps(self.numeric_impute, self.max_categories) if self.steps is None else list(self.steps)
        self.steps_: list[tuple[list[str], Transform]] = []
        categorical_out: set[str] = set()
        codes_out: set[str] = set()  # ordinal codes, a subset of categorical_out
        for i, spec in enumerate(specs):
            key = f"features.steps[{i}]"
            step = build_step(dict(spec), key)
            cols = select_columns(work, spec, type(step).default_columns, key)
            if not cols:
                logger.info("%s (%s) selects no columns here; skipped", key, spec["name"])
                continue
            try:
                out = step.fit_transform(work[cols], y_values)
            except ConfigError as exc:  # a transform's option: name the step it belongs to
                raise ConfigError(exc.key.replace("features.steps", key, 1), exc.given, exc.allowed, exc.hint) from exc
            work = self._replace(work, cols, out, key)
            categorical_out -= set(cols) - set(out.columns)  # one-to-one steps (scale, impute) keep it
            codes_out -= set(cols) - set(out.columns)
            if getattr(step, "categorical_output", False):
                categorical_out |= set(out.columns)
            if getattr(step, "codes_output", False):
                codes_out |= set(out.columns)
            self.steps_.append((cols, step))
        left = [c for c in work.columns if not is_numeric(work[c])]
        if left:
            raise DataError(f"column(s) {left} are not numeric after the feature steps; add a step that encodes "
                            "them (onehot, ordinal, target, datetime) or drop them from the data")
        self.transformed_names_ = [str(c) for c in work.columns]
        matrix = work.astype("float64").to_numpy()
        self.support_ = np.ones(matrix.shape[1], dtype=bool)
        self.selection_: list[dict[str, Any]] = []
        for i, spec in enumerate(self.selection or []):
            selector = build_selector(dict(spec), f"features.selection[{i}]")
            kept = np.flatnonzero(self.support_)
            names = [self.transformed_names_[j] for j in kept]
            selector.fit(matrix[:, kept], y_values, names)
            self.support_[kept[~selector.support_]] = False
            self.selection_.append(selector.report(names))
            logger.info("selection %s kept %d of %d features", spec["method"], int(selector.support_.sum()),
                        len(names))
        self.feature_names_out_ = [n for n, keep in zip(self.transformed_names_, self.support_) if keep]
        self.categorical_features_ = [i for i, n in enumerate(self.feature_names_out_) if n in categorical_out]
        # columns of category codes (ordinal): the boosters with native categorical splits take them
        self.category_codes_ = [i for i, n in enumerate(self.feature_names_out_) if n in codes_out]
        return matrix[:, self.support_]

    @staticmethod
    def _replace(work: pd.DataFrame, cols: list[str], out: pd.DataFrame, key: str) -> pd.DataFrame:
        rest = work.drop(columns=cols)
        clash = sorted(set(rest.columns) & set(out.columns))
        if clash or out.columns.duplicated().any():
            raise DataError(f"{key} produces column name(s) {clash or list(out.columns)} that already exist; "
                            "rename the input columns or drop one")
        return pd.concat([rest, out], axis=1)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(f"input lacks feature column(s) {missing}; the model was trained on {self.columns_}")
        if not hasattr(self, "steps_"):  # a model saved before feature steps existed
            return np.asarray(self.transformer_.transform(X[self.columns_]), dtype=np.float64)
        # name -> column (a Series as given, or a float array from a step): per request this is several
        # times cheaper than reshaping a DataFrame at every step, and gives the same numbers
        work: dict[str, Any] = dict(X[self.columns_].items())
        for cols, step in self.steps_:
            out = step.transform(pd.DataFrame({c: work.pop(c) for c in cols}, index=X.index))
            if all(is_numeric(out[c]) for c in out.columns):
                work.update(zip(out.columns, out.to_numpy(dtype=np.float64, na_value=np.nan).T))
            else:
                work.update(out.items())
        matrix = np.empty((len(X), int(self.support_.sum())), dtype=np.float64)
        for j, name in enumerate(self.feature_names_out_):
            column = work[name]
            matrix[:, j] = column if isinstance(column, np.ndarray) else column.to_numpy(np.float64, na_value=np.nan)
        return matrix

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def report(self) -> dict[str, Any]:
        """What the features are and why: the steps with their columns, and each selector's scores."""
        return {
            "input_columns": self.columns_,
            "steps": [{"name": _registered_name(step), "columns": cols, "outputs": step.names_out_}
                      for cols, step in getattr(self, "steps_", [])],
            "transformed": list(getattr(self, "transformed_names_", self.feature_names_out_)),
            "selection": list(getattr(self, "selection_", [])),
            "kept": list(self.feature_names_out_),
        }


def write_report(prep: Preprocessor, root: str) -> dict[str, str]:
    """Write ``features.json`` (steps, kept features, selection scores) and ``feature_scores.csv`` to a
    new folder under ``root``; returns ``{artifact folder: file}`` for ``track_experiment(artifacts=...)``."""
    directory = storage.new_folder(root)
    report = prep.report()
    path = storage.write_json(storage.join(directory, "features.json"), report)
    files = {"features": path}
    if report["selection"]:
        rows = [{"selector": i, "method": s["method"], "feature": name, "score": score,
                 "kept": name in s["kept"]} for i, s in enumerate(report["selection"])
                for name, score in s["scores"].items()]
        scores = storage.write_csv(pd.DataFrame(rows), storage.join(directory, "feature_scores.csv"))
        files["feature_selection"] = scores
    return files
