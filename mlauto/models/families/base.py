"""The model family base class and its registry; one module per family sits beside this one.

A family knows which estimator to build for each task (binary, multiclass, regression), may refuse
data it is not suited to (``skip_reason``), and may narrow its search space to the data's size
(``space_for``) before the search starts. What is specific to a family is declared on its class:
``reproduce_tolerance``, ``accelerated``, ``max_rows``, ``needs_scaling``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Sequence, Union

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlauto.errors import ConfigError, MlautoError
from mlauto.registry import Registry
from mlauto.tasks import TASKS

logger = logging.getLogger(__name__)

FAMILIES: Registry["Family"] = Registry("model family", "families")

# An estimator class or factory, or "module:attribute" naming one: imported only when a model is
# built, so a family with a heavy dependency (torch) costs nothing until it is used.
EstimatorRef = Union[type, Callable[..., BaseEstimator], str, None]


def _resolve(ref: EstimatorRef) -> Callable[..., BaseEstimator]:
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)
    assert ref is not None
    return ref


class Family:
    """Builds an estimator from sampled params; ``needs_scaling`` adds a StandardScaler in front.

    ``classifier``/``regressor`` is None where the family cannot do that kind of task.
    A new family is one module defining a registered subclass plus one ``conf/model/<name>.yaml``
    (its search ``space`` and ``fixed`` arguments), in mlauto or in a user's own package and folder.
    """

    name: str = ""
    needs_scaling: bool = False
    accelerated: bool = False  # trains on a GPU when given one (tune.gpus_per_trial)
    classifier: EstimatorRef = None
    regressor: EstimatorRef = None
    seed_param: str | None = "random_state"
    max_rows: int | None = None  # above this many training rows the family is skipped (too slow)
    # Splits categorical columns (ordinal codes, e.g. features=native) as categories: its estimator takes
    # ``categorical_columns`` (their indices), set from the preprocessor that made them.
    native_categorical: bool = False
    # Absolute tolerance on the validation metric when a trial is reproduced (action=reproduce).
    # A family with a fixed seed and the same thread count is deterministic: only float rounding.
    reproduce_tolerance: float = 1e-9
    # Known-good configs of this family (its space's params), cheapest first: the search evaluates them
    # before it samples (tune.portfolio), after the learned portfolio's configs (mlauto/tune/portfolio.json),
    # so a short budget starts from sound models. Chosen by hand: library defaults and common settings.
    portfolio: tuple[dict[str, Any], ...] = ()

    @classmethod
    def supports(cls, task: str) -> bool:
        return (cls.regressor if task == "regression" else cls.classifier) is not None

    @classmethod
    def tasks(cls) -> list[str]:
        return [t for t in TASKS if cls.supports(t)]

    def estimator_for(self, task: str) -> Callable[..., BaseEstimator]:
        est = self.regressor if task == "regression" else self.classifier
        if est is None:
            raise MlautoError(f"model family {self.name!r} cannot do {task}; it does {', '.join(self.tasks())}")
        return _resolve(est)

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        """Constructor arguments for ``task``: the sampled/fixed params plus the seed."""
        kwargs = dict(params)
        if self.seed_param:
            kwargs[self.seed_param] = seed
        return kwargs

    def build(self, params: dict[str, Any], seed: int, task: str = "binary") -> BaseEstimator:
        est = self.estimator_for(task)(**self.params_for(params, seed, task))
        if self.needs_scaling:
            return Pipeline([("scale", StandardScaler()), ("est", est)])
        return est

    def skip_reason(self, n_rows: int) -> str | None:
        """Why this family sits out a search on ``n_rows`` training rows, or None."""
        if self.max_rows is not None and n_rows > self.max_rows:
            return f"{n_rows} training rows > its limit of {self.max_rows}"
        return None

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        """The search space narrowed to the data's size; by default the configured one."""
        return space

    def start_points(self, space: dict[str, Any]) -> list[dict[str, Any]]:
        """The :attr:`portfolio` inside ``space`` (the planned one), see :meth:`clip`."""
        return [self.clip(space, config) for config in self.portfolio]

    @staticmethod
    def clip(space: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """``config`` inside ``space``: values clipped to its ranges; a param the space does not search,
        or a choice it does not offer, is left out (the sampler picks it)."""
        return {k: v for k, spec in space.items() if k in config and (v := _inside(spec, config[k])) is not None}

    def stopped_at(self, model: Any) -> int | None:
        """Rounds or epochs early stopping kept in a fitted ``model`` (the estimator itself, no scaler in
        front); None where the family does not early-stop or did not stop early this time."""
        return None

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        """``params`` training exactly ``length`` rounds or epochs, early stopping off (for a refit on
        more rows, where there is no validation split left to stop on)."""
        return params

    def refit_params(self, params: dict[str, Any], model: Any, scale: float) -> tuple[dict[str, Any], str | None]:
        """Params for a refit on ``scale`` times the rows ``model`` was fitted on, and how they changed.

        Where early stopping picked the rounds or epochs, the refit trains that count times ``scale``
        (more rows: proportionally more steps before the same point on the learning curve).
        """
        stopped = self.stopped_at(model)
        if stopped is None:
            return dict(params), None
        length = max(1, int(round(stopped * scale)))
        return self.fixed_length(dict(params), length), (
            f"early stopping kept {stopped} rounds/epochs; the refit on x{scale:.2f} the rows trains {length}")


class BoosterFamily(Family):
    """A gradient-boosting library with mlauto's round protocol (:mod:`mlauto.models.rounds`):
    ``n_estimators`` is a ceiling, early stopping keeps ``n_rounds_`` (``stopped_early_``), and the
    refit trains that count scaled. Splits ordinal-coded categoricals natively."""

    native_categorical = True
    reproduce_tolerance = 1e-6

    @staticmethod
    def sampled_columns(space: dict[str, Any], n_features: int) -> dict[str, Any]:
        """``space`` without column sampling below 8 features (sampling 3 of 5 mostly removes signal)."""
        return space if n_features >= 8 else {k: v for k, v in space.items() if k != "colsample_bytree"}

    def stopped_at(self, model: Any) -> int | None:
        return int(model.n_rounds_) if getattr(model, "stopped_early_", False) else None

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        return {**params, "n_estimators": length}  # no validation in the refit: no early stopping


def _inside(spec: Any, value: Any) -> Any:
    """``value`` within one param's spec: clipped to a range, None where a choice does not offer it."""
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "choice":
        return value if value in spec.get("values", ()) else None
    low, high = float(spec["low"]), float(spec["high"])
    clipped = min(max(float(value), low), high)
    return int(round(clipped)) if spec.get("type") in ("int", "logint") else clipped


def cap_int(space: dict[str, Any], param: str, high: int) -> dict[str, Any]:
    """An int range (or choice) of ``param`` capped at ``high``, keeping at least its lowest value."""
    spec = space.get(param)
    if not isinstance(spec, dict):
        return space
    spec = dict(spec)
    if spec.get("type") == "choice":
        values = [v for v in spec["values"] if v <= high] or [min(spec["values"])]
        spec["values"] = values
    elif spec.get("high") is not None:
        spec["high"] = max(int(spec["low"]) + 1, min(int(spec["high"]), high))
        if spec["high"] > high:  # too few rows even for the lowest value + 1: a fixed choice
            spec = {"type": "choice", "values": [max(1, min(int(spec["low"]), high))]}
    return {**space, param: spec}


def point_categorical(model: Any, categorical: Sequence[int]) -> Any:
    """``model`` (or a Pipeline's last step) told which columns are categorical, where it splits them
    natively: a refit's fresh preprocessor may number its columns differently from the trials' one."""
    est = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if "categorical_columns" in est.get_params(deep=False):
        est.set_params(categorical_columns=tuple(int(c) for c in categorical))
    return model


def build_estimator(family: str | type[Family], params: dict[str, Any], seed: int,
                    task: str = "binary") -> BaseEstimator:
    """An unfitted estimator of ``family`` (a registered name, or the class itself) for ``task``
    (binary, multiclass or regression)."""
    cls = FAMILIES.get(family) if isinstance(family, str) else family
    return cls().build(params, seed, task)


def families_for_task(task: str) -> list[str]:
    """The registered families that can do ``task``."""
    if task not in TASKS:
        raise ConfigError("tune.task", task, TASKS)
    return [name for name in FAMILIES.names() if FAMILIES.get(name).supports(task)]


def plan_families(families: dict[str, dict[str, Any]], task: str, n_rows: int, n_features: int,
                  categorical: Sequence[int] = ()) -> dict[str, dict[str, Any]]:
    """The configured families that take part in a search on this data, each with its space fitted to it.

    A family that cannot do ``task`` or refuses the data size is left out with a logged reason; none
    left is an error naming why each went. Each planned entry carries its class as ``family``, so a
    trial on a Ray worker builds it without looking the name up (a plugin family registered only in
    the driver travels by value). ``categorical``: the matrix's categorical columns (ordinal codes),
    fixed for the families that split them natively.
    """
    able = set(families_for_task(task))
    planned, dropped = {}, {}
    for name, conf in families.items():
        cls = FAMILIES.get(name)
        family = cls()
        reason = None if name in able else f"it cannot do {task}"
        reason = reason or family.skip_reason(n_rows)
        if reason:
            dropped[name] = reason
            logger.info("model family %s left out: %s", name, reason)
            continue
        planned[name] = {**conf, "space": family.space_for(dict(conf.get("space", {})), n_rows, n_features),
                         "family": cls}
        if family.native_categorical and categorical:
            planned[name]["fixed"] = {**conf.get("fixed", {}), "categorical_columns": [int(c) for c in categorical]}
    if not planned:
        raise MlautoError(f"no configured model family can be searched for {task} on {n_rows} rows: "
                          + "; ".join(f"{k}: {v}" for k, v in dropped.items()))
    return planned
