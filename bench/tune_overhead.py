"""Per-trial overhead of mlauto's run_search against bare Ray Tune running the same trainable.

The trainable is mlauto's own (``mlauto.tune.search._trainable``: fit, score on validation, one
``tune.report``) on a trivial fast model: logistic regression on 200 rows x 5 features (a few ms
per fit). Every setup runs N trials, 1 CPU each, as many at a time as Ray has CPUs, with the data
in the object store once (``tune.with_parameters``), the same storage and verbosity:

- ``bare Tune, reuse_actors=True``: Tune's default random sampling of ``C``, actors reused (its best);
- ``bare Tune, default``: the same with Tune's default ``reuse_actors=False`` (one actor per trial);
- ``mlauto run_search (random|optuna)``: the whole call, i.e. Optuna's define-by-run space through
  ``OptunaSearch`` + ``ConcurrencyLimiter``, reading back the results into a leaderboard;
- ``no Ray`` (floor): the same N fits and scores in a loop in this process.

Seconds per trial = wall seconds of the call / N. Setups alternate over ``--repeats`` rounds and the
median is reported, so background load hits them alike.

    PYTHONPATH=$PWD python bench/tune_overhead.py --trials 200 --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("bench")

FAMILIES = {"logreg": {"space": {"C": {"type": "loguniform", "low": 1e-3, "high": 100.0}},
                       "fixed": {"max_iter": 200}}}


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, random_state=seed)
    return X[:200], y[:200], X[200:], y[200:]


def bare_tune(data: tuple, trials: int, seed: int, storage: str, name: str, reuse_actors: bool) -> float:
    """Wall seconds of a bare Tuner over the same trainable (Tune's random sampling, FIFO)."""
    from ray import tune

    from mlauto.tune.search import _trainable

    start = time.perf_counter()
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, data=data, families=FAMILIES, seed=seed, metric="roc_auc", threads=1,
                             task="binary"),
        {"cpu": 1},
    )
    low, high = FAMILIES["logreg"]["space"]["C"]["low"], FAMILIES["logreg"]["space"]["C"]["high"]
    tuner = tune.Tuner(
        trainable,
        param_space={"family": "logreg", "logreg.C": tune.loguniform(low, high)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=reuse_actors, metric="score", mode="max"),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=1),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - start
    errors = sum(1 for r in grid if r.error is not None)
    if errors or len(grid) != trials:
        raise RuntimeError(f"{name}: {errors} failed of {len(grid)} (wanted {trials})")
    return wall


def mlauto_search(data: tuple, trials: int, seed: int, storage: str, name: str, algorithm: str) -> float:
    from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
    from mlauto.tune import SearchRun, run_search

    start = time.perf_counter()
    result = run_search(data, "binary", TuneConf(num_samples=trials), SearchConf(algorithm=algorithm),
                        SchedulerConf(), FAMILIES, SearchRun(name, storage, "roc_auc", "max", seed))
    wall = time.perf_counter() - start
    ok = sum(1 for t in result.trials if t.status == "ok")
    if ok != trials:
        raise RuntimeError(f"{name}: {ok} ok of {len(result.trials)} (wanted {trials})")
    return wall


def no_ray(data: tuple, trials: int, seed: int) -> float:
    """The trials' own work, in a loop here: build, fit, score."""
    from mlauto.models import build_estimator
    from mlauto.tune.metrics import evaluate

    X_tr, y_tr, X_va, y_va = data
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for c in np.exp(rng.uniform(np.log(1e-3), np.log(100.0), trials)):
        est = build_estimator("logreg", {**FAMILIES["logreg"]["fixed"], "C": float(c)}, seed, "binary")
        evaluate(est.fit(X_tr, y_tr), X_va, y_va, "binary")
    return time.perf_counter() - start


def wait_for_free_cpus(timeout: float = 60.0) -> None:
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0.0) < total and time.monotonic() < deadline:
        time.sleep(0.2)


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-trials", type=int, default=20,
                        help="trials for bare Tune with reuse_actors=False (slow: one actor start per trial); "
                             "0 leaves it out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)
    import ray

    data = make_data(args.seed)
    storage = tempfile.mkdtemp(prefix="mlauto-bench-overhead-")
    n = args.trials
    setups: dict[str, Callable[[str], float]] = {
        "bare Tune, reuse_actors=True (best)": lambda tag: bare_tune(data, n, args.seed, storage, tag, True),
        "mlauto run_search, random": lambda tag: mlauto_search(data, n, args.seed, storage, tag, "random"),
        "mlauto run_search, optuna (TPE)": lambda tag: mlauto_search(data, n, args.seed, storage, tag, "optuna"),
    }
    counts = {name: n for name in setups}
    if args.default_trials:
        name = "bare Tune, reuse_actors=False (default)"
        setups[name] = lambda tag: bare_tune(data, args.default_trials, args.seed, storage, tag, False)
        counts[name] = args.default_trials
    walls: dict[str, list[float]] = {name: [] for name in setups}
    floor = []
    loads = [load_note()]
    cpus = os.cpu_count() or 1
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, namespace="bench")
    try:
        for r in range(args.repeats):
            for k, (name, run) in enumerate(setups.items()):
                wait_for_free_cpus()
                logger.info("round %d: %s, %d trials (load %s)", r + 1, name, counts[name], load_note())
                walls[name].append(run(f"r{r}-s{k}"))
                logger.info("round %d: %s: %.2f s (%.4f s/trial)", r + 1, name, walls[name][-1],
                            walls[name][-1] / counts[name])
                loads.append(load_note())
            floor.append(no_ray(data, n, args.seed))
    finally:
        ray.shutdown()
    best = statistics.median(walls["bare Tune, reuse_actors=True (best)"]) / n
    print(f"\ntune_overhead: {n} trials x {args.repeats} rounds, 1 CPU per trial, {cpus} CPUs, logreg on 200x5; "
          f"load average (1/5/15 min) at start {loads[0]}, max 1-min {max(float(x.split()[0]) for x in loads):.2f}, "
          f"end {loads[-1]}")
    print(f"{'setup':42} {'trials':>6} {'s/trial':>8} {'min':>8} {'max':>8} {'/ bare best':>11}")
    for name, w in walls.items():
        per = [x / counts[name] for x in w]
        print(f"{name:42} {counts[name]:6d} {statistics.median(per):8.4f} {min(per):8.4f} {max(per):8.4f} "
              f"{statistics.median(per) / best:11.2f}")
    per = [x / n for x in floor]
    print(f"{'no Ray (fit + score in a loop, floor)':42} {n:6d} {statistics.median(per):8.4f} {min(per):8.4f} "
          f"{max(per):8.4f} {statistics.median(per) / best:11.2f}")
    for name in walls:
        if name.startswith("mlauto"):
            ratio = statistics.median(walls[name]) / n / best
            print(f"{name}: {ratio:.2f}x bare Tune's best (target <= 1.15x: {'met' if ratio <= 1.15 else 'missed'})")


if __name__ == "__main__":
    main()
