"""Time to the first trial result: seconds from ``tuner.fit()`` to Tune's first ``on_trial_result``.

What a trial actor does before it can report is start a worker, unpickle mlauto's trainable (importing
``mlauto.tune.search`` and what it imports) and fit one quick model. Torch in that import chain cost
seconds in every actor; the target (issue 12) is <= 3 s on this machine. The trainable and its
arguments are those run_search builds, run through a bare Tuner with a callback that stamps the
first result, so the same script measures any checkout: run it once with the old code on
PYTHONPATH and once with the new, in the same minutes (the machine is shared: load moves it).

    cd /tmp && PYTHONPATH=/path/to/old python /path/to/bench/first_trial.py --repeats 2   # before
    cd /tmp && PYTHONPATH=/path/to/new python /path/to/bench/first_trial.py --repeats 2   # after

Run it from outside any checkout: Ray puts the driver's working directory on its workers' ``sys.path``,
so from inside a checkout the trial actors import that checkout's mlauto whatever PYTHONPATH says.

Each repeat starts a fresh Ray (new worker processes: no import is cached) with 2 CPUs. ``--imports``
times only what a trial actor imports (fresh interpreters, Ray and Tune loaded first): on a machine too
loaded to start Ray clusters quickly, that is the part this change moves.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def one_run(family: str) -> float:
    import ray
    from ray import tune

    from mlauto.tune.search import _trainable

    first: list[float] = []

    class Stamp(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if not first:
                first.append(time.perf_counter())

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] > 0).astype(int)
    families = {family: {"space": {}, "fixed": {}}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        trainable = tune.with_parameters(_trainable, data=(X[:200], y[:200], X[200:], y[200:]), families=families,
                                         seed=0, metric="accuracy", threads=1, task="binary")
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(trainable, param_space={"family": family},
                               tune_config=tune.TuneConfig(num_samples=1),
                               run_config=tune.RunConfig(storage_path=tmp, name="first", verbose=0,
                                                         callbacks=[Stamp()]))
            start = time.perf_counter()
            tuner.fit()
        return first[0] - start
    finally:
        ray.shutdown()


# What a logreg trial actor imports and runs before its first report, Ray and Tune already loaded:
# the trainable's module, then (old code) torch for set_num_threads, then the estimator.
ACTOR_IMPORTS = """
import time, ray, sys
from ray import tune
start = time.perf_counter()
import mlauto.tune.search as s
if "report_epochs" in s._trainable.__code__.co_varnames:  # the old trainable imported torch first
    import torch
from mlauto.models import build_estimator
build_estimator("logreg", {}, 0)
print(time.perf_counter() - start, "torch" in sys.modules)
"""


def actor_imports(repeats: int) -> None:
    """The trial's import cost alone, in fresh interpreters (no Ray cluster: cheap on a loaded machine)."""
    import subprocess
    import sys

    times, torch = [], False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", ACTOR_IMPORTS], capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir())  # not the checkout: PYTHONPATH picks the code
        seconds, loaded = out.stdout.split()
        times.append(float(seconds))
        torch = loaded == "True"
    print(f"trial imports: median {statistics.median(times):.2f}s (runs: {', '.join(f'{t:.2f}' for t in times)}); "
          f"torch loaded: {torch}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", default="logreg")
    parser.add_argument("--imports", action="store_true", help="only the trial actor's imports, no Ray cluster")
    args = parser.parse_args()
    if args.imports:
        actor_imports(args.repeats)
        return
    times = [one_run(args.family) for _ in range(args.repeats)]
    print(f"first trial result ({args.family}): median {statistics.median(times):.2f}s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
