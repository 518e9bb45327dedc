"""Search-space translation: one family space spec (``conf/model/*.yaml``) into each search algorithm's terms.

Every algorithm hands the trainable the same flat config, ``{"family": f, "f.param": value, ...}``, in
natural units, so :func:`mlauto.tune.search.trial_params` decodes all of them alike:

- optuna / random: :class:`ConditionalSpace`, a define-by-run Optuna space (family, then its params);
- grid: :func:`grid_configs`, the full product of every family's discretised params;
- bayesopt: :class:`PerFamilyBayesOpt`, one GP (``BayesOptSearch``) per family over its numeric params.
"""

from __future__ import annotations

import itertools
import logging
import math
import pickle
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.search import Searcher

from mlauto.errors import MlautoError

if TYPE_CHECKING:  # optuna is imported by the driver's searcher, never by a trial actor
    import optuna

logger = logging.getLogger(__name__)

NUMERIC = ("uniform", "loguniform", "int", "logint")
LOG = ("loguniform", "logint")
INTEGER = ("int", "logint")


def _suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "loguniform":
        return trial.suggest_float(name, spec["low"], spec["high"], log=True)
    if kind == "uniform":
        return trial.suggest_float(name, spec["low"], spec["high"])
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]))
    if kind == "logint":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=True)
    return trial.suggest_categorical(name, list(spec["values"]))


class ConditionalSpace:
    """Define-by-run space: pick a family, then only that family's params (prefixed ``family.``).

    A class rather than a closure: Tune pickles the searcher into its experiment state.
    """

    def __init__(self, families: dict[str, dict[str, Any]]) -> None:
        self.families = families

    def __call__(self, trial: optuna.Trial) -> None:
        family = trial.suggest_categorical("family", sorted(self.families))
        for param, spec in self.families[family]["space"].items():
            _suggest(trial, f"{family}.{param}", spec)


# --- grid -------------------------------------------------------------------------------------------


def grid_values(spec: dict[str, Any], points: int) -> list[Any]:
    """The grid of one param: choices as given; ranges as ``points`` values, geometric for log types.

    Integer ranges are rounded and deduplicated, so ``int 1..3`` with 5 points gives [1, 2, 3].
    """
    kind = spec["type"]
    if kind not in NUMERIC:
        return list(spec["values"])
    low, high = float(spec["low"]), float(spec["high"])
    raw = np.geomspace(low, high, points) if kind in LOG else np.linspace(low, high, points)
    if kind in INTEGER:
        return sorted({int(round(v)) for v in raw})
    return [float(v) for v in raw]


def family_grid(space: dict[str, Any], points: int) -> list[dict[str, Any]]:
    """Every combination of one family's param grids (one empty combination for an empty space)."""
    names = sorted(space)
    axes = [grid_values(space[n], points) for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def grid_size(families: dict[str, dict[str, Any]], points: int) -> dict[str, int]:
    """Points per family, computed without building the grid (so a huge one fails fast)."""
    return {f: math.prod(len(grid_values(s, points)) for s in spec["space"].values())
            for f, spec in families.items()}


def grid_configs(families: dict[str, dict[str, Any]], points: int, max_size: int) -> list[dict[str, Any]]:
    """The whole grid as flat trial configs, family by family; over ``max_size`` points is an error."""
    if points < 2:
        raise MlautoError(f"search.grid_points_per_param must be >= 2, got {points}")
    sizes = grid_size(families, points)
    total = sum(sizes.values())
    if total > max_size:
        raise MlautoError(
            f"the grid has {total} points ({', '.join(f'{f}: {n}' for f, n in sorted(sizes.items()))}), over "
            f"search.max_grid_size={max_size}; lower search.grid_points_per_param ({points}), pick fewer families "
            "or params, raise search.max_grid_size, or use search=optuna"
        )
    if total > max_size // 4:
        logger.warning("the grid has %d points: %d trial(s) will run", total, total)
    return [{"family": f, **{f"{f}.{k}": v for k, v in combo.items()}}
            for f in sorted(families) for combo in family_grid(families[f]["space"], points)]


# --- bayesopt ---------------------------------------------------------------------------------------


def bayesopt_bounds(space: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """GP box bounds of a family's numeric params: log types in log10 units, integers widened by half a
    step so rounding gives each end value its full share."""
    bounds = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind not in NUMERIC:
            continue
        low, high = float(spec["low"]), float(spec["high"])
        if kind in LOG:
            low, high = math.log10(low), math.log10(high)
        if kind == "int":
            low, high = low - 0.499, high + 0.499
        bounds[name] = (low, high)
    return bounds


def bayesopt_decode(space: dict[str, Any], point: dict[str, float]) -> dict[str, Any]:
    """A GP point back in natural units; choice params take their first value (the GP cannot model them)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind not in NUMERIC:
            params[name] = list(spec["values"])[0]
            continue
        x = float(point[name])
        value = 10.0 ** x if kind in LOG else x
        if kind in INTEGER:
            value = int(min(max(round(value), int(spec["low"])), int(spec["high"])))
        else:
            value = float(min(max(value, float(spec["low"])), float(spec["high"])))
        params[name] = value
    return params


def split_budget(total: int, families: list[str]) -> dict[str, int]:
    """``total`` trials over ``families`` as evenly as possible (the first ones in order get the rest)."""
    base, rest = divmod(total, len(families))
    return {f: base + (1 if i < rest else 0) for i, f in enumerate(families)}


class PerFamilyBayesOpt(Searcher):
    """One ``BayesOptSearch`` per family, over that family's numeric params, sharing one Tune experiment.

    A GP needs a fixed box of continuous dimensions, so it cannot span a conditional space (different
    params per family) or categorical params. Each family therefore gets its own GP and a share of the
    budget (:func:`split_budget`); suggestions alternate between families. Choice params are fixed at
    their first value; integers are searched as reals and rounded; log params in log10 units.
    """

    def __init__(self, families: dict[str, dict[str, Any]], num_samples: int, *, metric: str, mode: str,
                 seed: int, random_steps: int = 0) -> None:
        from ray.tune.search.bayesopt import BayesOptSearch

        super().__init__(metric=metric, mode=mode)
        empty = sorted(f for f, spec in families.items() if not bayesopt_bounds(spec["space"]))
        if empty:
            raise MlautoError(
                f"search=bayesopt needs numeric params in every family; {', '.join(empty)} has only choice params "
                "(a Gaussian process cannot model categories): drop it from models, or use search=optuna or grid"
            )
        self.spaces = {f: families[f]["space"] for f in sorted(families)}
        self.quota = split_budget(num_samples, sorted(families))
        self.subs = {}
        for i, f in enumerate(sorted(families)):
            steps = random_steps or max(1, min(5, self.quota[f] // 3))
            self.subs[f] = BayesOptSearch(space=bayesopt_bounds(self.spaces[f]), metric=metric, mode=mode,
                                          random_state=seed + i, random_search_steps=steps)
        self.owner: dict[str, str] = {}
        self.issued = {f: 0 for f in self.subs}
        self.done: set[str] = set()
        self.turn = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the spaces, metric and mode are fixed at construction

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        order = sorted(self.subs)
        open_ = [f for f in order if f not in self.done and self.issued[f] < self.quota[f]]
        if not open_:
            return Searcher.FINISHED
        for k in range(len(order)):
            family = order[(self.turn + k) % len(order)]
            if family not in open_:
                continue
            point = self.subs[family].suggest(trial_id)
            if point == Searcher.FINISHED:
                self.done.add(family)  # converged: the GP keeps proposing the same point
                continue
            if point is None:
                continue  # waiting for its random steps to finish
            self.turn = (order.index(family) + 1) % len(order)
            self.issued[family] += 1
            self.owner[trial_id] = family
            params = bayesopt_decode(self.spaces[family], point)
            return {"family": family, **{f"{family}.{k}": v for k, v in params.items()}}
        return None if any(f not in self.done for f in open_) else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        family = self.owner.pop(trial_id, None)
        if family is None:
            return
        if error or not result or self.metric not in result:
            # Still counts towards the GP's random steps (a NaN is never fitted), so it does not wait forever.
            result, error = {self.metric: math.nan}, False
        self.subs[family].on_trial_complete(trial_id, result, error)

    def get_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


# --- portfolio: known-good configs first ---------------------------------------------------------------

# Families whose portfolio goes first, in this order: cheap and strong on tabular data first (on wide data a
# forest's config can take a loaded 60 s budget on its own: loans_interest, 300 one-hot columns); others
# follow by name.
PORTFOLIO_ORDER = ("lightgbm", "logreg", "hist_gb", "extra_trees", "random_forest")


def portfolio_points(families: dict[str, dict[str, Any]], n: int,
                     learned: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Up to ``n`` known-good configs, inside each family's planned space, as flat trial configs to
    evaluate before the search samples: the ``learned`` portfolio's configs (``{"family", "params"}``, in
    their order) whose family takes part, then the families' hand-picked ``portfolio``: every family's
    first config in :data:`PORTFOLIO_ORDER`, then every family's second, and so on. No config twice."""
    order = [f for f in PORTFOLIO_ORDER if f in families] + sorted(f for f in families if f not in PORTFOLIO_ORDER)
    per_family = {}
    for name in order:
        cls = families[name].get("family")
        if cls is not None:
            per_family[name] = cls().start_points(families[name].get("space", {}))
    chosen: list[tuple[str, dict[str, Any]]] = []
    for item in learned or []:
        name = item["family"]
        if name in per_family:
            chosen.append((name, families[name]["family"].clip(families[name].get("space", {}), item["params"])))
    for rank in range(max((len(v) for v in per_family.values()), default=0)):
        chosen += [(name, configs[rank]) for name, configs in per_family.items() if rank < len(configs)]
    points: list[dict[str, Any]] = []
    for name, config in chosen:
        point = {"family": name, **{f"{name}.{k}": v for k, v in config.items()}}
        if point not in points and len(points) < n:
            points.append(point)
    return points
