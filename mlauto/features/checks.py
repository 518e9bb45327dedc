"""Config checks of the features stage: ``features.steps`` and ``features.selection`` name registered
transforms and selectors, take only their options, and pick columns the way steps can."""

from __future__ import annotations

import importlib
from typing import Any, Iterable, Mapping

from mlauto.config.checks import check
from mlauto.config.schema import Config
from mlauto.errors import ConfigError
from mlauto.features.preprocess import COLUMN_SELECTORS
from mlauto.features.selection import selector_options
from mlauto.features.transforms import transform_options


def _check_options(key: str, spec: Any, kind: str, known: Mapping[str, Iterable[str]]) -> None:
    """One ``features.steps``/``features.selection`` entry: a known name and only that name's options."""
    if not isinstance(spec, Mapping) or kind not in spec:
        raise ConfigError(key, spec, hint=f"each entry is a mapping with a '{kind}'")
    if spec[kind] not in known:
        raise ConfigError(f"{key}.{kind}", spec[kind], sorted(known))
    allowed = [kind, *known[spec[kind]]]
    for option in spec:
        if option not in allowed:
            raise ConfigError(f"{key}.{option}", spec[option], allowed, f"unknown option of '{spec[kind]}'")


def _check_import(key: str, path: Any) -> None:
    """A user feature function's dotted path must import now, not after ingestion."""
    module, _, attr = str(path or "").rpartition(".")
    try:
        ok = bool(module) and callable(getattr(importlib.import_module(module), attr))
        hint = "" if ok else "it is not a callable"
    except (ImportError, AttributeError) as exc:
        ok, hint = False, f"cannot import it: {exc}"
    if not ok:
        raise ConfigError(key, path, "an importable dotted path such as my_pkg.my_mod.fn", hint)


@check
def check_features(cfg: Config) -> None:
    """``features.steps`` and ``features.selection``: names from the registries, their options, column picks."""
    transforms, selectors = transform_options(), selector_options()
    for i, spec in enumerate(cfg.features.steps or []):
        key = f"features.steps[{i}]"
        _check_options(key, spec, "name", transforms)
        columns = spec.get("columns")
        if isinstance(columns, str) and columns not in COLUMN_SELECTORS:
            raise ConfigError(f"{key}.columns", columns, [*COLUMN_SELECTORS, "a list of column names"])
        if columns is not None and not isinstance(columns, str) and not (
                isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns)):
            raise ConfigError(f"{key}.columns", columns, [*COLUMN_SELECTORS, "a list of column names"])
        if spec["name"] == "function":
            _check_import(f"{key}.path", spec.get("path"))
    for i, spec in enumerate(cfg.features.selection or []):
        key = f"features.selection[{i}]"
        _check_options(key, spec, "method", selectors)
        k, threshold = spec.get("k"), spec.get("threshold")
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ConfigError(f"{key}.k", k, "an integer >= 1")
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise ConfigError(f"{key}.threshold", threshold, "a number")
        if spec["method"] != "variance" and k is None and threshold is None:
            raise ConfigError(f"{key}.k", None, "an integer >= 1, or set threshold",
                              f"selector '{spec['method']}' needs k or threshold")
