"""Model selection after the search: the best trial per family, and an optional top-k ensemble.

The ensemble is judged on the validation split against the best single config refitted on the same
data; it replaces that model only when it scores strictly better, so turning it on never makes the
registered model worse on validation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from mlauto import storage
from mlauto.models import build_estimator
from mlauto.models.ensemble import build_ensemble
from mlauto.tune.final import FinalModel
from mlauto.tune.metrics import evaluate
from mlauto.tune.search import SearchResult, TrialResult

logger = logging.getLogger(__name__)

BOARD_COLUMNS = ["family", "score", "train_seconds", "infer_ms_per_row", "trial_id"]


def family_leaderboard(search: SearchResult) -> pd.DataFrame:
    """One row per family that has a scored trial: its best trial, best family first (by the metric's mode)."""
    best: dict[str, TrialResult] = {}
    for trial in _scored(search.trials):
        held = best.get(trial.family)
        if held is None or beats(trial.score, held.score, search.mode):
            best[trial.family] = trial
    rows = [{"family": t.family, "score": t.score, "train_seconds": t.metrics.get("train_seconds", math.nan),
             "infer_ms_per_row": t.metrics.get("infer_ms_per_row", math.nan), "trial_id": t.trial_id}
            for t in best.values()]
    frame = pd.DataFrame(rows, columns=BOARD_COLUMNS)
    return frame.sort_values("score", ascending=search.mode == "min", kind="stable").reset_index(drop=True)


def top_trials(search: SearchResult, k: int) -> list[TrialResult]:
    """The ``k`` best scored trials with distinct (family, params), best first."""
    ordered = sorted(_scored(search.trials), key=lambda t: t.score, reverse=search.mode == "max")
    out: list[TrialResult] = []
    seen: set[str] = set()
    for trial in ordered:
        key = json.dumps([trial.family, trial.params], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(trial)
        if len(out) == k:
            break
    return out


def _scored(trials: Sequence[TrialResult]) -> list[TrialResult]:
    return [t for t in trials if t.status == "ok" and not math.isnan(t.score)]


def beats(a: float, b: float, mode: str, margin: float = 0.0) -> bool:
    """``a`` better than ``b`` by more than ``margin`` in the metric's direction."""
    return a > b + margin if mode == "max" else a < b - margin


@dataclass
class EnsembleDecision:
    """What the selection step tried and what it kept; ``model`` is the fitted ensemble when kept."""

    method: str
    members: list[dict[str, Any]]  # {trial_id, family, params, val_score}, best first
    metric: str
    kept: bool
    ensemble_score: float = math.nan
    best_single_score: float = math.nan
    train_seconds: float = 0.0
    reason: str = ""
    model: BaseEstimator | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly: for summary.json and the run's params."""
        return {"method": self.method, "kept": self.kept, "metric": self.metric,
                "ensemble_score": self.ensemble_score, "best_single_score": self.best_single_score,
                "train_seconds": round(self.train_seconds, 3), "reason": self.reason,
                "members": [{k: m[k] for k in ("trial_id", "family", "params", "val_score", "weight") if k in m}
                            for m in self.members]}  # weight: caruana's


def choose_ensemble(
    trials: Sequence[TrialResult],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    method: str,
    metric: str,
    mode: str,
    task: str = "binary",
    seed: int = 0,
    min_gain: float = 0.0,
) -> EnsembleDecision:
    """Fit ``trials``' configs (best first) and their ensemble on the training matrix; keep the ensemble
    only if its validation ``metric`` beats the first (best) config's by more than ``min_gain``.

    Each member is fitted once on its own (for its validation score); soft voting reuses those fits,
    stacking refits them on cross-validation folds. A failing ensemble fit falls back to the single best.
    """
    if method == "none":
        return EnsembleDecision(method, [], metric, kept=False, reason="ensembles are off",
                                best_single_score=trials[0].score if trials else math.nan)
    X_tr, y_tr, X_va, y_va = data
    members: list[dict[str, Any]] = []
    fitted: list[BaseEstimator] = []
    start = time.perf_counter()
    for trial in trials:
        est = build_estimator(trial.family, trial.params, seed, task)
        est.fit(X_tr, y_tr)
        fitted.append(est)
        members.append({"trial_id": trial.trial_id, "family": trial.family, "params": dict(trial.params),
                        "val_score": evaluate(est, X_va, y_va, task)[metric]})
    decision = EnsembleDecision(method, members, metric, kept=False,
                                best_single_score=members[0]["val_score"] if members else math.nan)
    if len(fitted) < 2:
        decision.reason = f"{len(fitted)} distinct config(s): nothing to combine"
        return decision
    try:
        unfitted = [build_estimator(t.family, t.params, seed, task) for t in trials]
        ensemble = build_ensemble(method, fitted if method == "soft_vote" else unfitted, task=task, seed=seed,
                                  prefit=method == "soft_vote")
        ensemble.fit(X_tr, y_tr)
        decision.train_seconds = time.perf_counter() - start
        decision.ensemble_score = evaluate(ensemble, X_va, y_va, task)[metric]
    except Exception as exc:  # noqa: BLE001 - any member/meta-model failure means: keep the single best
        logger.warning("%s ensemble failed, keeping the single best config: %r", method, exc)
        decision.reason = f"ensemble fit failed: {exc!r}"
        return decision
    decision.kept = beats(decision.ensemble_score, decision.best_single_score, mode, min_gain)
    decision.reason = (f"{method} of {len(fitted)} {'beats' if decision.kept else 'does not beat'} the best single "
                       f"config on validation {metric}: {decision.ensemble_score:.4f} vs {decision.best_single_score:.4f}")
    decision.model = ensemble if decision.kept else None
    logger.info("ensemble: %s", decision.reason)
    return decision


def ensemble_final(prep: Any, decision: EnsembleDecision, splits: Any, task: str = "binary") -> FinalModel:
    """The kept ensemble as the final model: the same Pipeline shape ("prep", "model") as :func:`fit_final`.

    Its family is ``ensemble``; params name the method and members, so a warm start skips it.
    """
    if not decision.kept or decision.model is None:
        raise ValueError("no ensemble was kept")
    features, target = splits.features, splits.target
    pipeline = Pipeline([("prep", prep), ("model", decision.model)])
    val = evaluate(pipeline, splits.val[features], splits.val[target].to_numpy(), task)
    test = evaluate(pipeline, splits.test[features], splits.test[target].to_numpy(), task)
    params = {"method": decision.method, "members": [{"family": m["family"], "params": m["params"]}
                                                     for m in decision.members]}
    # Members stay fitted on the training split (no refit): tune.refit applies to single configs
    return FinalModel(pipeline, "ensemble", params, val, test, decision.train_seconds, val_rows=len(splits.val),
                      rows_seen={"train": len(splits.train)})


def save_selection(root: str, board: pd.DataFrame, curves: Any = None) -> dict[str, str]:
    """Write family_leaderboard.csv (and learning_curves.csv, pareto.csv when ``curves``) to a new folder
    under ``root`` (one per training, so runs sharing a root keep theirs).

    Returns {MLflow artifact folder: file}, for ``track_experiment(artifacts=...)``.
    """
    directory = storage.new_folder(root)
    out = {"selection": storage.write_csv(board, storage.join(directory, "family_leaderboard.csv"))}
    if curves is not None:
        out["curves"] = storage.write_csv(curves.frame, storage.join(directory, "learning_curves.csv"))
        out["pareto"] = storage.write_csv(curves.pareto, storage.join(directory, "pareto.csv"))
    return out


__all__ = ["EnsembleDecision", "beats", "choose_ensemble", "ensemble_final", "family_leaderboard", "save_selection",
           "top_trials"]
