"""Selection rules after the search, compared on the same trials (issue 12: the winner's curse).

With hundreds of trials scored on the same few thousand rows, the argmax of noisy out-of-fold scores
is optimistic: on OJ at 300 s the best of 1,741 LightGBM trials scored 0.854 out of fold and 0.818 on
the test rows. This bench runs one mlauto search per dataset of the development suite
(``bench/automl_suite.py``'s splits, overrides and leave-one-dataset-out portfolio), keeps its trials,
and then applies each selection rule to those same trials, so the rules differ in nothing else:

- ``single``: the best trial's config (no ensemble);
- ``top3``: Caruana over 3 candidates, greedy on the task's metric, kept on a strict out-of-fold win
  (mlauto's default before this bench);
- ``families``: Caruana over each family's best config, greedy on the metric, strict win;
- ``families_smooth``: the same pool, greedy on a smooth loss (log loss for classes, the metric for
  regression), kept when its out-of-fold metric is at least the best single config's;
- ``families_always``: the same ensemble, always kept.

Each rule's final model is refit on all the suite's 80% (``tune.refit=all``, as the suite does) and
scored once on the suite's 20%. Results: ``bench/results/selection/<dataset>-s<seed>-b<budget>.json``
(a rerun resumes); ``--summary`` prints the table and each rule's mean and wins against ``top3``.

    cd /tmp && PYTHONPATH=/path/to/checkout python /path/to/checkout/bench/selection.py --budget 60
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import automl_suite as suite  # noqa: E402

OUT = suite.ROOT / "bench" / "results" / "selection"
RULES = ["single", "top3", "families", "families_smooth", "families_always"]
logger = logging.getLogger("bench.selection")


def _smooth(task: str, metric: str) -> str:
    return "log_loss" if task != "regression" else metric


def run(name: str, seed: int, budget: float) -> dict[str, Any]:
    from sklearn.base import clone

    from mlauto.api import fit
    from mlauto.config.schema import TuneConf
    from mlauto.models.ensemble import caruana_weights
    from mlauto.tune import caruana
    from mlauto.tune.cv import cv_data, use_cv
    from mlauto.tune.final import fit_final
    from mlauto.tune.metrics import evaluate
    from mlauto.tune.select import beats, top_trials

    train, test, target, task_kind = suite.load(name, seed)
    metric = "accuracy" if task_kind == "classification" else "r2"
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = fit(train, target, overrides=[
            "models=all", f"tune.time_budget_s={budget}", f"tune.metric={metric}", "tune.refit=all",
            "prepare.clean.dedupe=false", f"seed={seed}", "tune.sample_sizes.fractions=[]",
            "tune.ensemble.method=none", *suite.portfolio_override(name)], root=root)
        wall = time.perf_counter() - start
    trained = result.trained
    splits, search, task = trained.splits, trained.search, trained.task
    prep = clone(trained.final.pipeline.named_steps["prep"])
    X_train = prep.fit_transform(splits.train[splits.features], splits.train[splits.target])
    data = (X_train, splits.train[splits.target].to_numpy(), prep.transform(splits.val[splits.features]),
            splits.val[splits.target].to_numpy())
    t = TuneConf()
    search_data = (cv_data(data, task, t.cv_folds, seed) if use_cv(len(data[1]) + len(data[3]), t.cv_folds,
                                                                     t.cv_max_rows) else data)
    y = search_data[1] if len(search_data) == 3 else search_data[3]
    classes = None if task == "regression" else np.unique(search_data[1])
    X_test = test[[c for c in test.columns if c != target]]

    def test_score(pipe: Any) -> float:
        return suite.score(task_kind, test[target], pipe.predict(X_test))

    def oof_score(out: np.ndarray, key: str) -> float:
        return evaluate(caruana._Outputs(out, classes), None, y, task)[key]

    cache: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}

    def oof(trial: Any) -> tuple[np.ndarray, dict[str, Any]]:
        if trial.trial_id not in cache:
            cache[trial.trial_id] = caruana.out_of_fold(trial, search_data, seed, task, classes)
        return cache[trial.trial_id]

    best = search.best
    single = fit_final(prep, best.family, best.params, splits, seed, X_train=X_train, task=task, refit="all")
    rows: dict[str, Any] = {"single": {"test": test_score(single.pipeline), "oof": best.score, "members": 1}}
    mode = search.mode
    pools = {"top3": caruana.candidates(search, 3),
             "families": caruana.candidates(search, len({t.family for t in search.trials}))}

    def ensemble(pool: list[Any], greedy_key: str, keep: Callable[[float, float], bool]) -> dict[str, Any]:
        outs = [oof(tr)[0] for tr in pool]
        greedy_mode = "min" if greedy_key in ("log_loss", "rmse", "mae") else "max"
        weights = caruana_weights(outs, lambda o: oof_score(o, greedy_key), greedy_mode, caruana.ROUNDS)
        mixed = np.tensordot(weights / weights.sum(), np.asarray(outs), axes=1)
        e = oof_score(mixed, metric)
        b_single = max(oof_score(o, metric) for o in outs) if mode == "max" else min(oof_score(o, metric) for o in outs)
        kept = keep(e, b_single) and (weights > 0).sum() > 1
        row: dict[str, Any] = {"oof": e, "oof_best_single": b_single, "kept": bool(kept),
                               "members": int((weights > 0).sum()),
                               "weights": {f"{tr.family}:{tr.trial_id}": float(w) for tr, w in zip(pool, weights) if w}}
        if not kept:
            row["test"] = rows["single"]["test"]
            return row
        chosen = {"members": [{"trial_id": tr.trial_id, "family": tr.family, "params": dict(tr.params), **oof(tr)[1]}
                              for tr in pool], "weights": weights.tolist(), "val_metrics": {}, "seconds": 0.0}
        final = caruana.caruana_final(prep, chosen, splits, seed, task, "all")
        row["test"] = test_score(final.pipeline)
        return row

    strict = lambda e, b: beats(e, b, mode)  # noqa: E731
    at_least = lambda e, b: not beats(b, e, mode)  # noqa: E731
    smooth = _smooth(task, metric)
    t0 = time.perf_counter()
    rows["top3"] = ensemble(pools["top3"], metric, strict)
    rows["families"] = ensemble(pools["families"], metric, strict)
    rows["families_smooth"] = ensemble(pools["families"], smooth, at_least)
    rows["families_always"] = ensemble(pools["families"], smooth, lambda e, b: True)
    return {"rules": rows, "trials": len(search.trials), "search_wall_s": round(wall, 1),
            "selection_s": round(time.perf_counter() - t0, 1), "best_family": best.family,
            "families": sorted({t.family for t in search.trials}), "load": suite.load_average()}


def summary() -> str:
    rows = []
    for path in sorted(OUT.glob("*.json")):
        d = json.loads(path.read_text())
        rows.append({"run": path.stem, **{r: d["rules"][r]["test"] for r in RULES}})
    frame = pd.DataFrame(rows).set_index("run")
    lines = ["| run | " + " | ".join(RULES) + " |", "|---" * (len(RULES) + 1) + "|"]
    lines += [f"| {run} | " + " | ".join(f"{v:.4f}" for v in row) + " |" for run, row in frame.iterrows()]
    lines += ["", "| rule | mean | vs top3: wins / ties / losses (tie within 0.002) |",
             "|---|---|---|"]
    for r in RULES:
        d = frame[r] - frame["top3"]
        lines.append(f"| {r} | {frame[r].mean():.4f} | {(d > suite.TIE).sum()} / {(d.abs() <= suite.TIE).sum()} / "
                     f"{(d < -suite.TIE).sum()} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=list(suite.SUITE))
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.summary:
        print(summary())
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        path = OUT / f"{name}-s{args.seed}-b{args.budget:g}.json"
        if path.exists():
            continue
        logger.info("%s: searching %gs", name, args.budget)
        out = run(name, args.seed, args.budget)
        path.write_text(json.dumps(out, indent=1, default=float))
        logger.info("%s: %s", name, {r: round(out["rules"][r]["test"], 4) for r in RULES})
        import ray

        ray.shutdown()
    print(summary())


if __name__ == "__main__":
    main()
