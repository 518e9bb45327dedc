"""The whole-run budget (``tune.budget_s``): ingest to registered model, not just the search.

The search gets what ingest and prepare left, less what must follow it: the chosen config's refits,
the sample-size runs, an ensemble's fits, the report and tracking. What those fits cost is known only
once trials report, so :class:`BudgetStopper` ends the search early when the best config's fits would
not fit in the time left (a slow winner needs more room after the search than a fast one). A Caruana
ensemble refits each family's best config on the search's folds and then again as ``tune.refit`` says,
so the stopper keeps room for those too, at each family's own cost.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune.stopper import Stopper

from mlauto.tune.search import _flat

# After the search, besides the fits: the report (permutation importance on the validation rows) and
# MLflow tracking and registration. A few seconds on a quiet machine; kept with a margin.
FIXED_AFTER_S = 8.0
# A fit after the search is on more rows than a trial's (train+val, or every row): its cost scaled up.
REFIT_GROWTH = 1.5
REFITS = {"train": 1, "train_val": 2, "all": 3}  # fits of the chosen config in fit_final


def fits_after(refit: str, sample_fractions: list[float], sample_top_k: int, ensemble_k: int) -> float:
    """Fits of the best config after the search, in units of one trial fit: refits, sample-size runs, and
    (soft_vote/stacking, ``ensemble_k`` > 0) an ensemble's fits."""
    sample = sum(sample_fractions) * sample_top_k if sample_fractions else 0.0
    return REFITS.get(refit, 3) + sample + ensemble_k


def member_fits(refit: str, folds: int) -> float:
    """Fits of one Caruana candidate after the search: its out-of-fold fits (``folds``; 1 on a holdout)
    and, should it be weighted, its refits."""
    return max(1, folds) + REFITS.get(refit, 3) - 1


def search_seconds(budget_s: float, elapsed_s: float, time_budget_s: float | None) -> float:
    """The search's time budget: what the run budget leaves after ``elapsed_s`` and the fixed part after
    the search (at least 1 s); never more than ``tune.time_budget_s`` where that is set too."""
    left = max(1.0, budget_s - elapsed_s - FIXED_AFTER_S)
    return min(left, time_budget_s) if time_budget_s else left


class BudgetStopper(Stopper):
    """Ends the search when ``deadline`` (``time.time()``) minus the work after the search is reached:
    ``fits`` fits of the best config at its reported cost per fit (a CV trial's seconds over its folds),
    and ``per_member`` fits of each of the ``members`` best families' best configs (Caruana's candidates)."""

    def __init__(self, deadline: float, fits: float, mode: str, per_member: float = 0.0, members: int = 0) -> None:
        self.deadline, self.fits, self.mode = deadline, fits, mode
        self.per_member, self.members = per_member, members
        self.best_score = -math.inf if mode == "max" else math.inf
        self.best_fit_s = 0.0
        self.family_best: dict[str, tuple[float, float]] = {}  # family -> (best score, its seconds per fit)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        score = result.get("score")
        if isinstance(score, (int, float)) and not math.isnan(score):
            fit_s = float(result.get("train_seconds", 0.0)) / max(1, int(result.get("folds", 1) or 1))
            if self._better(score, self.best_score):
                self.best_score, self.best_fit_s = float(score), fit_s
            family = str(_flat(result.get("config")).get("family", ""))
            held = self.family_best.get(family)
            if family and (held is None or self._better(score, held[0])):
                self.family_best[family] = (float(score), fit_s)
        return False  # single trials run on; the whole search stops at stop_all

    def reserve_s(self) -> float:
        """Seconds needed after the search (the fits above, scaled to the refits' larger data)."""
        ranked = sorted(self.family_best.values(), key=lambda v: v[0], reverse=self.mode == "max")
        members_s = sum(fit_s for _, fit_s in ranked[: self.members]) * self.per_member
        return (self.fits * self.best_fit_s + members_s) * REFIT_GROWTH

    def stop_all(self) -> bool:
        return time.time() >= self.deadline - self.reserve_s()
