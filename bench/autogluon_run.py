"""One AutoGluon-Tabular fit, run by the Python of AutoGluon's own virtualenv (``make venv-autogluon``:
its pins, ray<2.59 among them, cannot share mlauto's environment). bench/automl_suite.py writes the
split as Parquet, calls this, and scores the predictions itself, as it does for mlauto and FLAML.

    python bench/autogluon_run.py TRAIN.parquet TEST.parquet TARGET TASK BUDGET_S SEED OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import pandas as pd
from autogluon.tabular import TabularPredictor


def main() -> None:
    train_path, test_path, target, task, budget, seed, out = sys.argv[1:8]
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    metric = "accuracy" if task == "classification" else "r2"
    with tempfile.TemporaryDirectory() as path:
        start = time.perf_counter()
        # presets: AutoGluon's default (medium_quality); time_limit: the same budget the others get
        predictor = TabularPredictor(label=target, eval_metric=metric, path=path, verbosity=0).fit(
            train, time_limit=float(budget), ag_args_fit={"random_seed": int(seed)})
        wall = time.perf_counter() - start
        pred = predictor.predict(test.drop(columns=[target]))
        pd.DataFrame({"pred": pred.to_numpy()}).to_parquet(os.path.join(out, "pred.parquet"))
        board = predictor.leaderboard(silent=True)
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump({"wall_s": round(wall, 1), "best_family": predictor.model_best, "trials": int(len(board))}, f)


if __name__ == "__main__":
    main()
