"""The fitted preprocessing pipeline: imputation and one-hot encoding, fitted on train only.

It travels inside the saved model, so training, batch scoring and serving share one code path.
Scaling belongs to the families that need it (see :mod:`mlauto.models`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from mlauto.errors import DataError

MISSING = "__missing__"


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain strings, with missing values as their own category."""
    return frame.astype(object).where(frame.notna(), MISSING).astype(str)


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


class Preprocessor(BaseEstimator, TransformerMixin):
    """Impute numeric columns, impute and one-hot encode the rest; learned state ends in ``_``."""

    def __init__(self, numeric_impute: str = "median", max_categories: int = 50) -> None:
        self.numeric_impute = numeric_impute
        self.max_categories = max_categories

    def fit(self, X: pd.DataFrame, y: Any = None) -> "Preprocessor":
        if not isinstance(X, pd.DataFrame):
            raise TypeError("Preprocessor.fit expects a pandas DataFrame with named columns")
        self.columns_ = [str(c) for c in X.columns]
        self.numeric_ = [c for c in self.columns_ if is_numeric_dtype(X[c]) and not is_bool_dtype(X[c])]
        self.categorical_ = [c for c in self.columns_ if c not in self.numeric_]
        self.schema_ = infer_schema(X, self.max_categories)
        parts = []
        if self.numeric_:
            parts.append(("num", SimpleImputer(strategy=self.numeric_impute), self.numeric_))
        if self.categorical_:
            cat = Pipeline(
                [
                    ("strings", FunctionTransformer(as_category_strings, feature_names_out="one-to-one")),
                    (
                        "onehot",
                        OneHotEncoder(
                            handle_unknown="infrequent_if_exist",
                            max_categories=self.max_categories,
                            sparse_output=False,
                        ),
                    ),
                ]
            )
            parts.append(("cat", cat, self.categorical_))
        self.transformer_ = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
        self.transformer_.fit(X)
        self.feature_names_out_ = [str(n) for n in self.transformer_.get_feature_names_out()]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(f"input lacks feature column(s) {missing}; the model was trained on {self.columns_}")
        return np.asarray(self.transformer_.transform(X[self.columns_]), dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)
