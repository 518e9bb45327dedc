"""Scoring a validated request: the one code path for the Serve replica and any other server."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_regressor

from mlauto.serve.validation import RequestValidator


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@dataclass
class Scored:
    features: np.ndarray  # after the fitted preprocessing: what the monitor tests
    predictions: np.ndarray
    proba: np.ndarray | None  # None for a regressor: it predicts numbers, not classes
    classes: np.ndarray | None

    @property
    def finite(self) -> np.ndarray:
        """Per record, whether the model's output is finite (1e308 in a field can overflow it)."""
        if self.proba is None:
            return np.isfinite(np.asarray(self.predictions, dtype=float))
        return np.isfinite(self.proba).all(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The top-class probability per record (what the label-free estimate averages); NaN for a regressor."""
        if self.proba is None:
            return np.full(len(self.predictions), np.nan)
        return self.proba.max(axis=1)

    @staticmethod
    def concat(parts: list["Scored"]) -> "Scored":
        """The parts of one request scored in chunks, as one."""
        if len(parts) == 1:
            return parts[0]
        return Scored(np.concatenate([p.features for p in parts]), np.concatenate([p.predictions for p in parts]),
                      None if parts[0].proba is None else np.concatenate([p.proba for p in parts]), parts[0].classes)

    def body(self, request_id: str, model_name: str, version: str) -> dict[str, Any]:
        out = {
            "request_id": request_id,
            "model": {"name": model_name, "version": version},
            "predictions": [_plain(p) for p in self.predictions],
        }
        if self.proba is not None:
            labels = [str(_plain(c)) for c in self.classes]  # type: ignore[union-attr]
            out["probabilities"] = [dict(zip(labels, map(float, row))) for row in self.proba]
        return out


def score_many(pipeline: Any, columns: list[str], requests: list[list[dict[str, Any]]]) -> list[Scored]:
    """Score the validated records of several requests in one pass, and split the result per request.

    One DataFrame, one transform and one ``predict_proba`` for the lot: that fixed cost, not the
    rows, dominates small requests, which is what makes batching pay.
    """
    sizes = [len(r) for r in requests]
    frame = pd.DataFrame.from_records([rec for r in requests for rec in r], columns=columns)
    features = pipeline.named_steps["prep"].transform(frame)
    model = pipeline.named_steps["model"]
    if is_regressor(model):
        proba, classes = None, None
        predictions = np.asarray(model.predict(features), dtype=float)
    else:
        proba = model.predict_proba(features)
        classes = np.asarray(pipeline.classes_)
        predictions = classes[np.argmax(proba, axis=1)]
    out, start = [], 0
    for n in sizes:
        part = slice(start, start + n)
        out.append(Scored(features[part], predictions[part], None if proba is None else proba[part], classes))
        start += n
    return out


def score(pipeline: Any, validator: RequestValidator, body: Any) -> Scored:
    """Validate (raises :class:`InvalidRequest`), preprocess and predict with the saved pipeline."""
    return score_many(pipeline, validator.columns, [validator(body)])[0]
