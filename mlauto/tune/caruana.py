"""Caruana's ensemble selection over each family's best config (``tune.ensemble.method=caruana``).

Each candidate (every family's best config, then the next best trials, ``tune.ensemble.k`` in all) is
refitted on the search's folds (or once on the training split with the validation split held out) for
its out-of-fold outputs; greedy selection with replacement weights them. The greedy steps follow a
smooth loss (:func:`greedy_loss`: log loss for classes), and the ensemble is kept when it beats the best
single candidate's out-of-fold loss by more than ``tune.ensemble.min_gain``. Why not the tuned metric:
accuracy moves in steps of one row, so greedy selection stalls at the first tie, and the best trial's
score is the maximum of hundreds of noisy estimates (the winner's curse: on OJ, 0.854 out of fold for
0.818 on the test rows), a bar a fair ensemble fails while generalizing better (bench/selection.py).
The kept members are then refit as ``tune.refit`` says (early-stopped rounds scaled to the rows), and
the test score comes from members that never saw the test rows.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlauto.models import FAMILIES, build_estimator, point_categorical
from mlauto.models.ensemble import WeightedEnsemble, caruana_weights
from mlauto.tasks import metric_mode
from mlauto.tune.final import FinalModel
from mlauto.tune.metrics import evaluate
from mlauto.tune.search import SearchResult, TrialResult
from mlauto.tune.select import EnsembleDecision, beats, top_trials

logger = logging.getLogger(__name__)

ROUNDS = 25  # greedy additions at most: weights in steps of 1/25


class _Outputs:
    """Fixed outputs with a fitted model's face, so :func:`evaluate` scores them like any model."""

    def __init__(self, out: np.ndarray, classes: np.ndarray | None) -> None:
        self.out, self.classes_ = out, classes

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.out

    def predict(self, X: Any) -> np.ndarray:
        return self.out


def _output(model: Any, X: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Probabilities in ``classes``' column order (a fold may miss a class), or predictions."""
    if classes is None:
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    out = np.zeros((len(X), len(classes)))
    out[:, np.searchsorted(classes, np.asarray(model.classes_))] = proba
    return out


def _fit(family: str, params: dict[str, Any], seed: int, task: str, X: np.ndarray, y: np.ndarray,
         X_va: np.ndarray, y_va: np.ndarray) -> Any:
    """One fit as a trial does it: early stopping on the held-out rows where the model takes them."""
    model = build_estimator(family, params, seed, task)
    if not isinstance(model, Pipeline) and "validation" in inspect.signature(model.fit).parameters:
        return model.fit(X, y, validation=(X_va, y_va))
    return model.fit(X, y)


def out_of_fold(trial: TrialResult, data: tuple, seed: int, task: str, classes: np.ndarray | None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """A config's outputs on rows its fits did not train on, and how long early stopping let it train
    (``stopped``: median rounds/epochs over the fits, None when it did not stop; ``fit_rows``)."""
    fam = FAMILIES.get(trial.family)()
    stops, rows = [], []
    if len(data) == 3:  # (X, y, folds): every row once out of fold
        X, y, folds = data
        out = np.zeros((len(y), len(classes))) if classes is not None else np.zeros(len(y))
        for tr, va in folds:
            model = _fit(trial.family, trial.params, seed, task, X[tr], y[tr], X[va], y[va])
            out[va] = _output(model, X[va], classes)
            stops.append(fam.stopped_at(model.steps[-1][1] if isinstance(model, Pipeline) else model))
            rows.append(len(tr))
    else:  # holdout: the validation split's outputs
        X_tr, y_tr, X_va, y_va = data
        model = _fit(trial.family, trial.params, seed, task, X_tr, y_tr, X_va, y_va)
        out = _output(model, X_va, classes)
        stops.append(fam.stopped_at(model.steps[-1][1] if isinstance(model, Pipeline) else model))
        rows.append(len(y_tr))
    known = [s for s in stops if s is not None]
    return out, {"stopped": int(np.median(known)) if known else None, "fit_rows": int(np.mean(rows))}


def greedy_loss(task: str, metric: str) -> str:
    """What greedy selection follows: log loss for classification (smooth, where accuracy moves in steps
    of one row and stalls at ties), the tuned metric for regression (already smooth)."""
    return metric if task == "regression" else "log_loss"


def select(trials: Sequence[TrialResult], data: tuple, metric: str, mode: str, task: str, seed: int
           ) -> dict[str, Any]:
    """Out-of-fold outputs of ``trials`` (best first), Caruana's weights (greedy on :func:`greedy_loss`),
    and the ensemble's and best single candidate's scores on those rows, in ``metric`` and in the loss:
    ``{members, weights, loss, ensemble_score, best_single_score, ensemble_loss, best_single_loss,
    val_metrics, seconds}``."""
    start = time.perf_counter()
    y = data[1] if len(data) == 3 else data[3]
    classes = None if task == "regression" else np.unique(data[1])
    members, outputs = [], []
    for trial in trials:
        out, length = out_of_fold(trial, data, seed, task, classes)
        outputs.append(out)
        members.append({"trial_id": trial.trial_id, "family": trial.family, "params": dict(trial.params), **length})

    loss = greedy_loss(task, metric)
    loss_mode = metric_mode(loss)

    def scores(out: np.ndarray) -> dict[str, float]:
        return evaluate(_Outputs(out, classes), None, y, task)

    singles = [scores(o) for o in outputs]
    for member, value in zip(members, singles):
        member["val_score"] = value[metric]
    weights = caruana_weights(outputs, lambda out: scores(out)[loss], loss_mode, ROUNDS)
    mixed = scores(np.tensordot(weights / weights.sum(), np.asarray(outputs), axes=1))

    def best(key: str, direction: str) -> float:
        values = [s[key] for s in singles]
        return max(values) if direction == "max" else min(values)

    return {"members": members, "weights": weights.tolist(), "loss": loss, "ensemble_score": mixed[metric],
            "best_single_score": best(metric, mode), "ensemble_loss": mixed[loss],
            "best_single_loss": best(loss, loss_mode), "val_metrics": mixed, "seconds": time.perf_counter() - start}


def _member_params(member: dict[str, Any], n_rows: int) -> dict[str, Any]:
    """A member's params for a fit on ``n_rows`` rows without held-out rows: early-stopped length scaled."""
    if member.get("stopped") is None:
        return dict(member["params"])
    fam = FAMILIES.get(member["family"])()
    length = max(1, int(round(member["stopped"] * n_rows / max(1, member["fit_rows"]))))
    return fam.fixed_length(dict(member["params"]), length)


def _fit_on(prep: Any, frame: pd.DataFrame, splits: Any, members: list[dict[str, Any]], weights: list[float],
            seed: int, task: str) -> Pipeline:
    """A fresh preprocessor and every weighted member fitted on ``frame``, as one Pipeline."""
    fresh = clone(prep)
    X = fresh.fit_transform(frame[splits.features], frame[splits.target])
    y = frame[splits.target].to_numpy()
    cats = getattr(fresh, "category_codes_", ())  # a fresh preprocessor: its own column numbers
    fitted = [point_categorical(build_estimator(m["family"], _member_params(m, len(frame)), seed, task), cats).fit(X, y)
              for m in members]
    model = WeightedEnsemble(fitted, weights, task=task, prefit=True).fit(X, y)
    return Pipeline([("prep", fresh), ("model", model)])


def caruana_final(prep: Any, chosen: dict[str, Any], splits: Any, seed: int, task: str, refit: str) -> FinalModel:
    """The weighted members refit on the rows ``refit`` names; the test score from a fit without test rows."""
    keep = [i for i, w in enumerate(chosen["weights"]) if w > 0]
    members = [chosen["members"][i] for i in keep]
    weights = [chosen["weights"][i] for i in keep]
    start = time.perf_counter()
    frames = {"train": splits.train, "train_val": pd.concat([splits.train, splits.val], ignore_index=True)}
    honest = _fit_on(prep, frames["train" if refit == "train" else "train_val"], splits, members, weights, seed, task)
    test = evaluate(honest, splits.test[splits.features], splits.test[splits.target].to_numpy(), task)
    seen = {"train": len(splits.train)} if refit == "train" else {"train": len(splits.train), "val": len(splits.val)}
    served, served_test, test_from = honest, None, "served"
    if refit == "all":
        every = pd.concat([frames["train_val"], splits.test], ignore_index=True)
        served = _fit_on(prep, every, splits, members, weights, seed, task)
        served_test = evaluate(served, splits.test[splits.features], splits.test[splits.target].to_numpy(), task)
        seen, test_from = {**seen, "test": len(splits.test)}, "train_val refit"
    params = {"method": "caruana", "members": [{"family": m["family"], "params": m["params"], "weight": w}
                                               for m, w in zip(members, weights)]}
    note = "; ".join(f"{m['family']} x{w:g}" for m, w in zip(members, weights))
    logger.info("caruana ensemble refit (%s): %s", refit, note)
    return FinalModel(served, "ensemble", params, dict(chosen["val_metrics"]), test,
                      chosen["seconds"] + time.perf_counter() - start, val_rows=len(splits.val), refit=refit,
                      rows_seen=seen, test_from=test_from, served_test_metrics=served_test,
                      refit_note=f"caruana weights: {note}")


def candidates(search: SearchResult, k: int) -> list[TrialResult]:
    """Up to ``k`` configs to select from, best first: each family's best (different families err
    differently, which is what an ensemble needs), then the next best trials overall."""
    ordered = top_trials(search, max(k, len(search.trials)))
    out, families = [], set()
    for trial in ordered:
        if trial.family not in families:
            families.add(trial.family)
            out.append(trial)
    out = out[:k]
    out += [t for t in ordered if t not in out][: k - len(out)]
    return sorted(out, key=lambda t: t.score, reverse=search.mode == "max")


def choose(trials: Sequence[TrialResult], data: tuple, metric: str, mode: str, task: str, seed: int,
           min_gain: float = 0.0) -> tuple[EnsembleDecision, dict[str, Any] | None]:
    """The selection as an :class:`EnsembleDecision` (kept when the ensemble beats the best single
    config's out-of-fold :func:`greedy_loss` by more than ``min_gain``), and what :func:`caruana_final`
    needs when it is kept."""
    if len(trials) < 2:
        return EnsembleDecision("caruana", [], metric, kept=False,
                                reason=f"{len(trials)} distinct config(s): nothing to combine"), None
    chosen = select(trials, data, metric, mode, task, seed)
    e, b = chosen["ensemble_score"], chosen["best_single_score"]
    loss, le, lb = chosen["loss"], chosen["ensemble_loss"], chosen["best_single_loss"]
    used = sum(w > 0 for w in chosen["weights"])
    kept = beats(le, lb, metric_mode(loss), min_gain)  # one weighted config is that config: equal, not a win
    members = [{**m, "weight": w} for m, w in zip(chosen["members"], chosen["weights"])]
    decision = EnsembleDecision(
        "caruana", members, metric, kept=kept, ensemble_score=e, best_single_score=b,
        train_seconds=chosen["seconds"],
        reason=f"caruana over {len(trials)} configs ({used} weighted) {'beats' if kept else 'does not beat'} the "
               f"best single config out of fold: {loss} {le:.4f} vs {lb:.4f}"
               + (f" ({metric} {e:.4f} vs {b:.4f})" if loss != metric else ""))
    logger.info("ensemble: %s", decision.reason)
    return decision, chosen if kept else None


__all__ = ["candidates", "caruana_final", "choose", "greedy_loss", "out_of_fold", "select"]
