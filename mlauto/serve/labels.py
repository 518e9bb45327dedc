"""Checking ``/feedback`` labels against the served model before they reach the monitor.

A label of the wrong kind (not a class-like scalar for a classifier, not a finite number for a
regressor) is refused with a 422 naming its index. A well-typed label of a class the model never saw
is not an error and not lost: it is marked so the monitor quarantines it (a possible new class).
Labels are normalised to the type of the model's classes (``1.0`` -> ``1`` for integer classes), so a
stored label never breaks the cast a retrain makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlauto.serve.body import brief


@dataclass
class CheckedLabels:
    labels: list[Any]  # normalised to the classes' type
    unseen: list[int] = field(default_factory=list)  # indices of well-typed labels of unseen classes
    errors: list[dict[str, Any]] = field(default_factory=list)  # one per refused label, naming its index


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _kind(classes: list[Any]) -> str:
    if all(isinstance(c, (bool, np.bool_)) for c in classes):
        return "bool"
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)) for c in classes):
        return "int"
    if all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, (bool, np.bool_))
           for c in classes):
        return "float"
    return "str"


def _as_class(value: Any, kind: str) -> Any:
    """The label as the classes' type, or raise ValueError (wrong kind)."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("a boolean (true or false)")
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ValueError({"int": "an integer class", "float": "a number class", "str": "a text class"}[kind])
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise ValueError("an integer class (a fractional or non-numeric label would be truncated or cast)")
    if kind == "float":
        try:
            number = float(value)
        except ValueError:
            raise ValueError("a number class") from None
        if not math.isfinite(number):
            raise ValueError("a finite number class")
        return number
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    raise ValueError("a text class")


def check_labels(labels: list[Any], classes: list[Any] | None) -> CheckedLabels:
    """``classes``: the model's classes, or None for a regressor (labels must be finite numbers)."""
    out = CheckedLabels(labels=[])
    if classes is None:
        for i, value in enumerate(labels):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out.labels.append(float(value))
            else:
                out.errors.append({"loc": ["body", "labels", i], "msg": "this model is a regressor: the label must "
                                   f"be a finite number, got {brief(value)}"})
        return out
    plain = [_plain(c) for c in classes]
    kind = _kind(plain)
    known = set(plain)
    for i, value in enumerate(labels):
        try:
            label = _as_class(value, kind)
        except ValueError as exc:
            out.errors.append({"loc": ["body", "labels", i], "msg": f"the label must be {exc.args[0]}, like the "
                               f"model's classes {plain[:10]}; got {brief(value)}"})
            continue
        out.labels.append(label)
        if label not in known:
            out.unseen.append(i)
    return out
