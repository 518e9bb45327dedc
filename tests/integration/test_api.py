"""The Python API against the session's Ray: fit on a DataFrame, load, serve, predict, feedback, drift, stop."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

import mlauto
from tests.helpers import free_port
from mlauto.errors import ConfigError, MlautoError

pytestmark = pytest.mark.ray


def _frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


def test_import_is_light():
    """``import mlauto`` loads no Ray; the API is reached through the package's lazy attributes."""
    import subprocess

    code = ("import sys, mlauto; heavy = [m for m in ('ray', 'mlflow', 'torch', 'hydra') if m in sys.modules]; "
            "print(heavy, callable(mlauto.fit), 'fit' in dir(mlauto))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True True"


def test_compose_is_the_commands_config():
    from mlauto.cli import to_config
    from mlauto.config.store import compose

    overrides = ["models=fast", "tune.num_samples=3", "search=random"]
    assert mlauto.compose(overrides) == to_config(compose(overrides))
    with pytest.raises(ConfigError, match="tune.num_samples"):
        mlauto.compose(["tune.num_samples=0"])


def test_fit_load_serve(ray_session, tmp_path):
    frame = _frame()
    result = mlauto.fit(frame, target="label", root=tmp_path,
                        overrides=["models=fast", "tune.num_samples=2", "name=apitest", "tune.cv_folds=0",
                                   "tune.portfolio=0", "tune.ensemble.method=none", "tune.sample_sizes.fractions=[0.5,1.0]"])
    # the frame went through the file source: a snapshot, a fingerprint, the quarantine
    summary = result.summary
    assert summary["status"] == "ok" and summary["snapshot"].startswith(str(tmp_path / "snapshots"))
    assert summary["data_fingerprint"] and summary["quarantine"]["rows_in"] == len(frame)
    assert summary["quarantine"]["rows"] == 0
    assert os.listdir(tmp_path / "inputs") == [next(iter(os.listdir(tmp_path / "inputs")))]
    assert result.version == "1" and result.run_id == summary["mlflow_run_id"]
    assert len(result.leaderboard) == 2 and {"family", "score", "train_seconds"} <= set(result.leaderboard.columns)
    pareto = result.pareto
    assert {"family", "fraction", "train_seconds", "score", "pareto"} <= set(pareto.columns)
    assert set(pareto["fraction"]) == {0.5, 1.0} and pareto["pareto"].any()
    assert result.report and os.path.exists(result.report)

    X, y = frame.drop(columns="label"), frame["label"].to_numpy()
    predicted = result.model.predict(X)
    assert predicted.shape == (len(X),) and (predicted == y).mean() > 0.9
    assert result.model.predict_proba(X).shape == (len(X), 2)

    loaded = mlauto.load("mlauto-apitest", root=tmp_path)
    assert loaded.version == "1" and (loaded.predict(frame) == predicted).all()  # extra columns are dropped

    # fitting the same frame again reuses its Parquet file and snapshot, and registers version 2
    again = mlauto.fit(frame, target="label", root=tmp_path,
                       overrides=["models=fast", "tune.num_samples=2", "tune.cv_folds=0", "tune.portfolio=0",
                                  "tune.ensemble.method=none", "name=apitest"])
    assert again.version == "2" and again.summary["data_fingerprint"] == summary["data_fingerprint"]
    assert mlauto.load("mlauto-apitest", version=1, root=tmp_path).version == "1"

    endpoint = again.serve(port=free_port())
    try:
        assert endpoint.url.startswith("http://")
        answer = endpoint.predict(X.head(5))
        assert len(answer["predictions"]) == 5 and answer["model"]["version"] == "2"
        accepted = endpoint.feedback(answer["request_id"], y[:5])
        assert accepted["accepted"] == 5
        drift = endpoint.drift()
        assert drift["rows_seen"] >= 5
    finally:
        endpoint.stop()
    import requests

    with pytest.raises(requests.RequestException):
        requests.get(endpoint.url + "/health", timeout=5).raise_for_status()


def test_fit_rejects_other_data(tmp_path):
    with pytest.raises(MlautoError, match="DataFrame, a path or a Ray Dataset"):
        mlauto.fit(np.zeros((3, 2)), target="label", root=tmp_path, overrides=["models=fast"])
