"""Search quality at equal wall budgets: mlauto (random, Optuna TPE, ...) vs plain Optuna vs FLAML.

On scikit-learn's built-in datasets, one seeded train/validation/test split each (60/20/20,
stratified for classes), every system gets the same wall budget and the same metric (roc_auc
binary, accuracy multiclass, rmse regression), picks its best config on the validation split, and
that config (trained on the training split only) is scored once on test:

- ``mlauto <algorithm>``: :func:`mlauto.tune.run_search` (Ray Tune, 1 CPU per trial, as many trials
  at a time as there are CPUs) over the families of ``models=<--models>`` (``all``: every
  ``mlauto/conf/model/`` file) with their spaces from there;
- ``optuna (no Ray)``: a plain Optuna study (TPE, same seed) over the same conditional space and the
  same estimators (:func:`mlauto.models.build_estimator`: StandardScaler where the family needs it),
  ``n_jobs`` threads, no Ray;
- ``flaml``: FLAML AutoML with its own estimators and spaces, ``time_budget`` = the budget, the same
  validation split as its holdout, ``retrain_full=False`` (its model is trained on the training
  split only, like the others).

"time to best" is when the best validation score was first reported, from the start of the call
(Ray Tune's result timestamps have whole-second resolution: mlauto's times are +-0.5 s).

    PYTHONPATH=$PWD python bench/search_compare.py --budgets 30 60 [--datasets breast_cancer digits wine diabetes]
"""

from __future__ import annotations

import argparse
import importlib.util
import glob
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("bench")

DATASETS = {  # name -> (loader, task, metric)
    "breast_cancer": ("load_breast_cancer", "binary", "roc_auc"),
    "digits": ("load_digits", "multiclass", "accuracy"),
    "wine": ("load_wine", "multiclass", "accuracy"),
    "diabetes": ("load_diabetes", "regression", "rmse"),
}
FLAML_TASK = {"binary": "classification", "multiclass": "classification", "regression": "regression"}


@dataclass
class Outcome:
    system: str
    val: float
    test: float
    time_to_best: float
    wall: float
    trials: int
    best: str  # the winning family / estimator
    first: float = math.nan  # seconds to the first finished trial (start-up cost)
    # (seconds from start, validation score) of every finished trial, in report order
    history: list[tuple[float, float]] = field(default_factory=list)


def load_split(name: str, seed: int) -> tuple[tuple, str, str]:
    """(X_tr, y_tr, X_va, y_va, X_te, y_te), task, metric."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    loader, task, metric = DATASETS[name]
    X, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    strat = y if task != "regression" else None
    X_rest, X_te, y_rest, y_te = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=strat)
    strat = y_rest if task != "regression" else None
    X_tr, X_va, y_tr, y_va = train_test_split(X_rest, y_rest, test_size=0.25, random_state=seed, stratify=strat)
    return (X_tr, y_tr, X_va, y_va, X_te, y_te), task, metric


def families_for(models: str) -> dict[str, dict[str, Any]]:
    """The families and spaces of ``models=<models>`` as the pipeline hands them to run_search."""
    from omegaconf import OmegaConf

    from mlauto.config.store import compose

    cfg = compose([f"models={models}"])
    fams = OmegaConf.to_container(cfg.families, resolve=True)
    return {name: {"space": dict(f.get("space") or {}), "fixed": dict(f.get("fixed") or {})}
            for name, f in fams.items()}


def families_for_task(families: dict, task: str, seed: int) -> tuple[dict, list[str]]:
    """The families build_estimator can build for ``task``, and a note for each it cannot."""
    from sklearn.base import is_classifier, is_regressor

    from mlauto.models import build_estimator

    kept, notes = {}, []
    for name, fam in families.items():
        try:
            est = build_estimator(name, dict(fam["fixed"]), seed, task)
        except Exception as exc:  # noqa: BLE001 - a family that cannot do the task is skipped, not fatal
            notes.append(f"{name}: build_estimator(task={task!r}) failed: {exc!r}")
            continue
        fits = is_regressor(est) if task == "regression" else is_classifier(est)
        if fits:
            kept[name] = fam
        else:
            final = est.steps[-1][1] if hasattr(est, "steps") else est
            notes.append(f"{name}: build_estimator(task={task!r}) gives a {type(final).__name__}, not a "
                         f"{'regressor' if task == 'regression' else 'classifier'}")
    return kept, notes


def better(a: float, b: float, mode: str) -> bool:
    """a at least as good as b."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a >= b if mode == "max" else a <= b


def refit_score(family: str, params: dict, seed: int, task: str, metric: str, split: tuple) -> tuple[float, float]:
    """(validation, test) of a config trained on the training split, as the pipeline's final refit."""
    from mlauto.models import build_estimator
    from mlauto.tune.metrics import evaluate

    X_tr, y_tr, X_va, y_va, X_te, y_te = split
    est = build_estimator(family, params, seed, task).fit(X_tr, y_tr)
    return evaluate(est, X_va, y_va, task)[metric], evaluate(est, X_te, y_te, task)[metric]


def report_times(storage: str, name: str, t0: float) -> dict[str, float]:
    """trial id -> seconds from ``t0`` at which it reported (Tune's timestamps: whole seconds, +0.5)."""
    times = {}
    for path in glob.glob(os.path.join(storage, name, "*", "result.json")):
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
        if lines:
            row = json.loads(lines[-1])
            times[str(row["trial_id"])] = max(0.0, row["timestamp"] + 0.5 - t0)
    return times


def run_mlauto(algorithm: str, families: dict, split: tuple, task: str, metric: str, mode: str, budget: float,
               seed: int, storage: str, tag: str) -> Outcome:
    from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
    from mlauto.tune import SearchRun, run_search

    from mlauto.errors import MlautoError

    X_tr, y_tr, X_va, y_va = split[:4]
    wait_for_free_cpus()
    t0 = time.time()
    try:
        result = run_search((X_tr, y_tr, X_va, y_va), task, TuneConf(num_samples=100_000, time_budget_s=budget),
                            SearchConf(algorithm=algorithm), SchedulerConf(), families,
                            SearchRun(tag, storage, metric, mode, seed))
    except MlautoError as exc:  # e.g. no trial finished within the budget
        logger.warning("%s: %s", tag, exc)
        return Outcome(f"mlauto {algorithm}", math.nan, math.nan, math.nan, time.time() - t0, 0, f"none ({exc})")
    wall = time.time() - t0
    wait_for_free_cpus()  # the trials' actors are gone before the next system starts
    times = report_times(storage, tag, t0)
    good = [t for t in result.trials if t.status == "ok" and not math.isnan(t.score)]
    history = sorted((times.get(t.trial_id, wall), t.score) for t in good)
    best = result.best
    time_to_best = min(times.get(t.trial_id, wall) for t in good if t.score == best.score)
    val, test = refit_score(best.family, best.params, seed, task, metric, split)
    if not math.isclose(val, best.score, rel_tol=1e-6, abs_tol=1e-9):
        logger.warning("%s: refit validation %.5f differs from the trial's %.5f", tag, val, best.score)
    return Outcome(f"mlauto {algorithm}", best.score, test, time_to_best, wall, len(good), best.family,
                   history[0][0], history)


def wait_for_free_cpus(timeout: float = 60.0) -> None:
    """Until Ray's CPUs are all free again (a finished search's actors exit asynchronously)."""
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0.0) < total and time.monotonic() < deadline:
        time.sleep(0.2)


def run_plain_optuna(families: dict, split: tuple, task: str, metric: str, mode: str, budget: float, seed: int,
                     n_jobs: int) -> Outcome:
    import optuna
    import torch

    from mlauto.models import build_estimator
    from mlauto.tune.metrics import evaluate
    from mlauto.tune.search import ConditionalSpace, trial_params

    torch.set_num_threads(1)  # as mlauto's 1-CPU trials
    X_tr, y_tr, X_va, y_va = split[:4]
    space = ConditionalSpace(families)
    history: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        space(trial)
        family, params = trial_params(trial.params, families)
        est = build_estimator(family, params, seed, task).fit(X_tr, y_tr)
        score = evaluate(est, X_va, y_va, task)[metric]
        history.append((time.perf_counter() - t0, score))
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=budget, n_jobs=n_jobs, catch=(Exception,))
    wall = time.perf_counter() - t0
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial
    family, params = trial_params(best.params, families)
    time_to_best = min(s for s, v in history if v == best.value)
    val, test = refit_score(family, params, seed, task, metric, split)
    history.sort()
    return Outcome("optuna (no Ray)", best.value, test, time_to_best, wall, len(done), family, history[0][0],
                   history)


def run_flaml(split: tuple, task: str, metric: str, budget: float, seed: int, n_jobs: int) -> Outcome:
    from flaml import AutoML

    from mlauto.tune.metrics import evaluate

    X_tr, y_tr, X_va, y_va, X_te, y_te = split
    automl = AutoML()
    with tempfile.TemporaryDirectory(prefix="mlauto-bench-flaml-") as tmp:
        log = os.path.join(tmp, "flaml.log")
        t0 = time.perf_counter()
        automl.fit(X_tr, y_tr, X_val=X_va, y_val=y_va, task=FLAML_TASK[task], metric=metric, time_budget=budget,
                   seed=seed, n_jobs=n_jobs, retrain_full=False, eval_method="holdout", verbose=0,
                   log_file_name=log, log_type="all")
        wall = time.perf_counter() - t0
        records = [json.loads(ln) for ln in Path(log).read_text().splitlines() if ln.strip().startswith("{")]
    records = [r for r in records if "wall_clock_time" in r]
    val = evaluate(automl, X_va, y_va, task)[metric]
    test = evaluate(automl, X_te, y_te, task)[metric]
    first = min((r["wall_clock_time"] for r in records), default=math.nan)
    return Outcome("flaml", val, test, float(automl.time_to_find_best_model), wall, len(records),
                   str(automl.best_estimator), first)


def time_to_reach(history: list[tuple[float, float]], target: float, mode: str) -> float:
    """First time at which a trial scored at least ``target``; nan if none did."""
    for seconds, score in sorted(history):
        if better(score, target, mode):
            return seconds
    return math.nan


def known_algorithms() -> tuple[str, ...]:
    try:
        from mlauto.config.schema import SearchAlgorithm
    except ImportError:
        return ("optuna", "random")
    return SearchAlgorithm.values()


def fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--budgets", nargs="+", type=float, default=[30.0])
    parser.add_argument("--algorithms", nargs="+", default=["random", "optuna", "bayesopt"],
                        help="mlauto search algorithms; ones run_search does not know are skipped with a note")
    parser.add_argument("--models", default="all",
                        help="models=<name>: the families mlauto searches (all: every mlauto/conf/model/ file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=0, help="threads for plain Optuna and FLAML (0: all CPUs)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["optuna", "flaml"],
                        help="leave out the plain-Optuna or FLAML baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning)  # sklearn's float32 probability-sum warning
    logger.setLevel(logging.INFO)
    if "flaml" not in args.skip and importlib.util.find_spec("flaml") is None:
        logger.warning("FLAML is not installed (pip install -e '.[compare]'): its column is skipped")
        args.skip.append("flaml")
    import ray

    cpus = os.cpu_count() or 1
    n_jobs = args.n_jobs or cpus
    known = known_algorithms()
    algorithms = [a for a in args.algorithms if a in known]
    notes = [f"mlauto algorithm {a!r} skipped: run_search knows {list(known)}"
             for a in args.algorithms if a not in known]
    all_families = families_for(args.models)
    storage = tempfile.mkdtemp(prefix="mlauto-bench-search-")
    rows: list[tuple[str, float, str, str, Outcome, str]] = []  # dataset, budget, metric, mode, outcome, load
    summary: list[str] = []
    logger.info("start: %s", load_note())
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, namespace="bench")
    try:
        for dataset in args.datasets:
            split, task, metric = load_split(dataset, args.seed)
            mode = "min" if metric == "rmse" else "max"
            families, why = families_for_task(all_families, task, args.seed)
            if not families:
                notes.append(f"{dataset} skipped: no family of models={args.models} builds a {task} estimator "
                             f"({'; '.join(why)})")
                logger.warning(notes[-1])
                continue
            notes += [f"{dataset}: family {w}" for w in why]
            for budget in args.budgets:
                outcomes: dict[str, Outcome] = {}
                for algorithm in algorithms:
                    tag = f"{dataset}-{algorithm}-{int(budget)}"
                    logger.info("%s: mlauto %s, %s s (%s)", dataset, algorithm, budget, load_note())
                    outcomes[f"mlauto {algorithm}"] = run_mlauto(algorithm, families, split, task, metric, mode,
                                                                 budget, args.seed, storage, tag)
                    rows.append((dataset, budget, metric, mode, outcomes[f"mlauto {algorithm}"], load_note()))
                if "optuna" not in args.skip:
                    logger.info("%s: plain optuna, %s s (%s)", dataset, budget, load_note())
                    outcomes["optuna (no Ray)"] = run_plain_optuna(families, split, task, metric, mode, budget,
                                                                   args.seed, n_jobs)
                    rows.append((dataset, budget, metric, mode, outcomes["optuna (no Ray)"], load_note()))
                if "flaml" not in args.skip:
                    logger.info("%s: flaml, %s s (%s)", dataset, budget, load_note())
                    outcomes["flaml"] = run_flaml(split, task, metric, budget, args.seed, n_jobs)
                    rows.append((dataset, budget, metric, mode, outcomes["flaml"], load_note()))
                summary += compare(dataset, budget, metric, mode, outcomes)
    finally:
        ray.shutdown()
    print(f"\nsearch_compare: seed {args.seed}, models={args.models}, {cpus} CPUs; end: {load_note()}")
    print(f"{'dataset':14} {'budget':>6} {'metric':8} {'system':18} {'trials':>6} {'best val':>9} {'test':>9} "
          f"{'t best s':>8} {'1st s':>6} {'wall s':>7} {'winner':15} load after")
    for dataset, budget, metric, mode, o, load_at in rows:
        print(f"{dataset:14} {budget:6.0f} {metric:8} {o.system:18} {o.trials:6d} {fmt(o.val):>9} {fmt(o.test):>9} "
              f"{fmt(o.time_to_best, 1):>8} {fmt(o.first, 1):>6} {o.wall:7.1f} {o.best:15} {load_at.split(' on ')[0]}")
    print()
    for line in summary:
        print(line)
    for note in notes:
        print(f"note: {note}")


def compare(dataset: str, budget: float, metric: str, mode: str, outcomes: dict[str, Outcome]) -> list[str]:
    """The targets: Bayesian reaches random's final score in <= 1/3 of random's time; mlauto >= FLAML."""
    lines = []
    rnd = outcomes.get("mlauto random")
    for name, o in outcomes.items():
        if rnd is None or not name.startswith("mlauto ") or name == "mlauto random":
            continue
        reach = time_to_reach(o.history, rnd.val, mode)
        ratio = reach / rnd.time_to_best if rnd.time_to_best > 0 else math.nan
        verdict = "met" if ratio <= 1 / 3 else "missed" if not math.isnan(ratio) else "never reached"
        lines.append(f"{dataset} {budget:.0f}s: {name} reached random's final val {metric} {rnd.val:.4f} at "
                     f"{fmt(reach, 1)} s vs random's {rnd.time_to_best:.1f} s: ratio {fmt(ratio, 2)} "
                     f"(target <= 0.33: {verdict})")
    flaml = outcomes.get("flaml")
    if flaml is not None:
        for name, o in outcomes.items():
            if name.startswith("mlauto "):
                lines.append(f"{dataset} {budget:.0f}s: {name} vs flaml, test {metric} {o.test:.4f} vs "
                             f"{flaml.test:.4f} ({'>=' if better(o.test, flaml.test, mode) else '<'} FLAML), "
                             f"val {o.val:.4f} vs {flaml.val:.4f}")
    return lines


if __name__ == "__main__":
    main()
