"""Each task (binary, multiclass, regression) through the real pipeline, batch scoring, serving,
monitoring and retraining. Task detection and families without Ray: tests/unit/tasks/test_tasks.py."""

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import requests

from mlauto import context, train
from mlauto.config.schema import MonitorConf, PredictConf, ServeConf
from mlauto.errors import ConfigError
from mlauto.models import build_estimator
from tests.helpers import free_port, make_config


def test_a_metric_that_does_not_fit_the_detected_task_is_refused(ray_session, tmp_path):
    cfg = make_config([f"root={tmp_path}", "data=diabetes", "tune.metric=accuracy", "models=fast"])
    with pytest.raises(ConfigError) as exc:
        train.train(cfg, {})
    assert exc.value.key == "tune.metric" and "mae, r2, rmse" in str(exc.value) and "regression" in str(exc.value)


@pytest.fixture(scope="module")
def regression(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("regression")
    cfg = make_config([f"root={root}", "experiment=diabetes", "tune.num_samples=4", "models=fast",
                       "+model@families.knn=knn", "tune.sample_sizes.fractions=[0.5,1.0]", "tune.sample_sizes.top_k=1"])
    return cfg, train.train(cfg, {})


@pytest.mark.slow
def test_regression_end_to_end_through_train(regression):
    from mlflow.tracking import MlflowClient

    cfg, trained = regression
    assert trained.task == "regression" and cfg.tune.metric == "auto"
    search = trained.search
    assert search.metric == "rmse" and search.mode == "min"
    ok = [t for t in search.trials if t.status == "ok"]
    assert len(ok) >= 2 and search.best.score == min(t.score for t in ok)  # min: the lowest RMSE wins
    assert all(t.metrics["score"] == t.metrics["val_rmse"] and "val_r2" in t.metrics for t in ok)
    final = trained.final
    assert set(final.val_metrics) == set(final.test_metrics) == {"rmse", "mae", "r2"}
    assert final.test_metrics["r2"] > 0.2 and 20 < final.test_metrics["rmse"] < 80  # target spans 25..346
    assert not hasattr(final.pipeline, "classes_")
    assert trained.curves is not None and trained.curves.fastest_within is not None
    summary = train.training_summary(trained, cfg)
    assert summary["task"] == "regression" and summary["metric"] == "rmse"
    run = MlflowClient(context.tracking_uri(cfg)).get_run(trained.tracked.run_id)
    assert run.data.params["task"] == "regression" and run.data.params["metric"] == "rmse"
    assert {"val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2"} <= set(run.data.metrics)
    assert run.data.metrics["test_rmse"] == pytest.approx(final.test_metrics["rmse"])
    bundle = context.loader_for(cfg)(trained.tracked.version)
    assert bundle.task == "regression" and bundle.meta["classes"] is None and bundle.meta["metric"] == "rmse"
    assert trained.report and os.path.exists(trained.report)


def test_regression_retrain_compare_uses_rmse(regression):
    from mlauto.retrain import compare as _compare

    cfg, trained = regression
    s = trained.splits
    champion = trained.final.pipeline
    challenger = build_estimator("logreg", {"C": 1e-4}, 0, "regression")  # heavily regularized: worse
    from sklearn.pipeline import Pipeline

    challenger = Pipeline([("prep", champion.named_steps["prep"]),
                           ("model", challenger.fit(champion.named_steps["prep"].transform(s.train[s.features]),
                                                    s.train[s.target]))])
    metric, a, b = _compare(champion, challenger, s.test, s.features, s.target, "rmse", "regression")
    assert metric == "rmse" and a == pytest.approx(trained.final.test_metrics["rmse"]) and b > a
    metric, _, _ = _compare(champion, challenger, s.test.head(1), s.features, s.target, "r2", "regression")
    assert metric == "rmse"  # R² is undefined on one row: RMSE stands in


def test_regression_predict_feedback_and_monitor_over_http(regression, tmp_path):
    from ray import serve

    from mlauto.monitor import start_monitor, stop_monitor
    from mlauto.serve import deploy

    cfg, trained = regression
    s = trained.splits
    start_monitor(context.loader_for(cfg), MonitorConf(actor_name="tasks-monitor", window=10), "mlauto-tests",
                  target=cfg.data.target, version=trained.tracked.version, state_dir=str(tmp_path))
    try:
        url = deploy(context.loader_for(cfg),
                     ServeConf(app_name="tasks-reg", host="127.0.0.1", port=free_port(), route_prefix="/reg",
                               monitor_flush_s=0.2),
                     trained.tracked.version, {"name": "tasks-monitor", "namespace": "mlauto-tests"})
        rows = s.test[s.features].head(12)
        resp = requests.post(f"{url}/predict", json=rows.to_dict(orient="records"), timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert "probabilities" not in body
        assert np.allclose(body["predictions"], trained.final.pipeline.predict(rows))
        labels = s.test[s.target].head(12).tolist()
        bad = requests.post(f"{url}/feedback", json={"request_id": body["request_id"],
                                                      "labels": ["high", *labels[1:]]}, timeout=30)
        detail = bad.json()["detail"]  # refused, nothing counted; the error names the label's index
        assert bad.status_code == 422 and detail[0]["loc"] == ["body", "labels", 0] and "finite number" in detail[0]["msg"]
        fb = requests.post(f"{url}/feedback", json={"request_id": body["request_id"], "labels": labels}, timeout=30)
        assert fb.status_code == 200, fb.text
        perf = fb.json()["performance"]
        errors = np.asarray(labels) - np.asarray(body["predictions"])
        assert perf["labels_total"] == 12 and perf["accuracy"] is None and perf["estimated_accuracy"] is None
        assert perf["rmse"] == pytest.approx(float(np.sqrt(np.mean(errors ** 2))))
        assert perf["mae"] == pytest.approx(float(np.mean(np.abs(errors))))
        deadline = time.time() + 30
        while (drift := requests.get(f"{url}/drift", timeout=30).json())["tests_run"] < 1:
            assert time.time() < deadline, drift
            time.sleep(0.3)
        pred_drift = drift["last_test"]["prediction_drift"]  # a KS test on the predicted values
        assert 0.0 <= pred_drift["p_val"] <= 1.0 and pred_drift["window_mean"] == pytest.approx(
            float(np.mean(body["predictions"][:10])))
        assert requests.get(f"{url}/model", timeout=30).json()["task"] == "regression"
    finally:
        serve.delete("tasks-reg")
        stop_monitor("tasks-monitor", "mlauto-tests")


@pytest.mark.slow
def test_multiclass_end_to_end_on_wine(ray_session, tmp_path):
    cfg = make_config([f"root={tmp_path}", "experiment=wine", "tune.num_samples=2", "tune.sample_sizes.fractions=[]"])
    trained = train.train(cfg, {})
    assert trained.task == "multiclass" and trained.search.metric == "accuracy" and trained.search.mode == "max"
    assert set(trained.final.test_metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert trained.final.test_metrics["accuracy"] > 0.8
    assert list(trained.final.pipeline.classes_) == [0, 1, 2]
    s = trained.splits
    assert set(s.train[s.target]) == set(s.test[s.target]) == {0, 1, 2}  # stratified
    summary = train.training_summary(trained, cfg)
    assert summary["task"] == "multiclass" and summary["metric"] == "accuracy"
    meta = json.loads(json.dumps(context.loader_for(cfg)(trained.tracked.version).meta))
    assert meta["task"] == "multiclass" and meta["classes"] == [0, 1, 2]


def test_regression_batch_scoring_writes_values_and_quarantines_bad_rows(regression, tmp_path):
    from mlauto.serve.batch import score_file

    cfg, trained = regression
    rows = trained.splits.test.reset_index(drop=True).head(30).copy()
    features = trained.splits.features
    rows[features[0]] = rows[features[0]].astype(object)
    rows.loc[3, features[0]] = "not a number"
    src = tmp_path / "rows.csv"
    rows.to_csv(src, index=False)
    out = score_file(PredictConf(input=str(src), workers=1, batch_size=16), context.tracking_uri(cfg),
                     context.model_name(cfg), trained.tracked.version)
    assert (out.rows_in, out.rows_scored, out.rows_quarantined) == (30, 29, 1)
    got = pd.read_parquet(out.output)
    assert not [c for c in got.columns if c.startswith("proba_")]  # values, no class probabilities
    good = rows.drop(index=3)
    expected = trained.final.pipeline.predict(good[features].astype(float))
    assert np.allclose(got["prediction"].to_numpy(dtype=float), expected)
    assert "valid number" in pd.read_parquet(out.quarantine)["reason"].iloc[0]
