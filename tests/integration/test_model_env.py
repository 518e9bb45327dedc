"""The registered model outside mlauto: ``mlflow models predict`` on the champion, in a Python that has the
dependencies but cannot import mlauto (the model carries mlauto's code, see ``track.store.package_source``)."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from mlauto import context
from tests.helpers import clean_env, venv_without_mlauto


def test_mlflow_predicts_the_champion_where_mlauto_is_not_installed(trained, tmp_path_factory):
    cfg, result = trained
    outside = tmp_path_factory.mktemp("no_mlauto")  # a cwd outside the checkout
    python = venv_without_mlauto(outside / "venv")
    env = clean_env(MLFLOW_TRACKING_URI=context.tracking_uri(cfg))
    probe = subprocess.run([python, "-c", "import sklearn, mlflow, mlauto"], cwd=outside, env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'mlauto'" in probe.stderr, probe.stderr

    rows = result.splits.test.drop(columns=[cfg.data.target]).head(25).reset_index(drop=True)
    rows.to_csv(outside / "rows.csv", index=False)
    out = subprocess.run(
        [python, "-m", "mlflow", "models", "predict", "-m", f"models:/{context.model_name(cfg)}@champion",
         "-i", "rows.csv", "-t", "csv", "-o", "predictions.json", "--env-manager", "local"],
        cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(outside / "predictions.json") as fh:
        got = json.load(fh)["predictions"]
    np.testing.assert_array_equal(np.asarray(got).ravel(), result.final.pipeline.predict(rows))
