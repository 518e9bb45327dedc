"""Time to the first trial result: seconds from ``tuner.fit()`` to Tune's first ``on_trial_result``.

What a trial actor does before it can report is start a worker, unpickle mlauto's trainable (importing
``mlauto.tune.search`` and what it imports) and fit one quick model. Torch in that import chain cost
seconds in every actor; the target (issue 12) is <= 3 s on this machine. The trainable and its
arguments are those run_search builds, run through a bare Tuner with a callback that stamps the
first result, so the same script measures any checkout: run it once with the old code on
PYTHONPATH and once with the new, in the same minutes (the machine is shared: load moves it).

    PYTHONPATH=/work/main python bench/first_trial.py --repeats 3     # before
    PYTHONPATH=$PWD python bench/first_trial.py --repeats 3           # after

Each repeat starts a fresh Ray (new worker processes: no import is cached) with 2 CPUs.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", default="logreg")
    args = parser.parse_args()
    times = [one_run(args.family) for _ in range(args.repeats)]
    print(f"first trial result ({args.family}): median {statistics.median(times):.2f}s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
