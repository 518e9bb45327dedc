"""Tasks (binary, multiclass, regression) and task-aware model families, end to end on real parts."""

import json
import math
import os
import time

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_classification, make_regression

from conftest import free_port, make_config
from mlauto.config.schema import MonitorConf, PredictConf, ServeConf
from mlauto import context, train
from mlauto.config import metric_for_task, metric_mode
from mlauto.errors import ConfigError, MlautoError
from mlauto.models import FAMILIES, TorchMLPRegressor, build_estimator, families_for_task, plan_families
from mlauto.tune.metrics import detect_task, evaluate

TASK_DATA = {
    "binary": lambda: make_classification(120, 5, n_informative=4, n_redundant=0, class_sep=2.0, random_state=0),
    "multiclass": lambda: make_classification(150, 5, n_informative=4, n_redundant=0, n_classes=3,
                                              n_clusters_per_class=1, class_sep=2.0, random_state=0),
    "regression": lambda: make_regression(120, 5, n_informative=4, noise=5.0, random_state=0),
}


def test_detect_task_on_each_kind():
    assert detect_task(load_breast_cancer().target) == "binary"
    assert detect_task(np.array(["yes", "no", "yes"])) == "binary"
    assert detect_task(load_wine().target) == "multiclass"
    assert detect_task(pd.Series(["a", "b", "c", "a"], dtype="category")) == "multiclass"
    assert detect_task(load_diabetes().target) == "regression"  # floats with many values
    assert detect_task(np.arange(100)) == "regression"  # integers, but too many to be classes
    assert detect_task(np.array([1.0, 2.0, 3.0, np.nan, 1.0])) == "multiclass"  # whole numbers, few of them


@pytest.mark.parametrize("task", sorted(TASK_DATA))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_fits_and_predicts_each_task_it_supports(family, task):
    assert FAMILIES.get(family).supports(task)  # all built-in families do every task
    X, y = TASK_DATA[task]()
    params = {"mlp": {"max_epochs": 40, "patience": 5, "batch_size": 16}, "hist_gb": {"max_iter": 30}}.get(family, {})
    est = build_estimator(family, params, 0, task).fit(X[:90], y[:90])
    scores = evaluate(est, X[90:], y[90:], task)
    if task == "regression":
        assert not hasattr(est, "classes_")
        assert set(scores) == {"rmse", "mae", "r2"} and scores["r2"] > 0.5, scores
        assert scores["rmse"] >= scores["mae"] > 0
    else:
        proba = est.predict_proba(X[90:])
        assert proba.shape == (len(X) - 90, len(np.unique(y))) and np.allclose(proba.sum(axis=1), 1.0)
        assert scores["accuracy"] > 0.75, scores


def test_linear_family_is_ridge_for_regression_with_alpha_from_C():
    est = build_estimator("logreg", {"C": 4.0, "max_iter": 1000}, 0, "regression")
    ridge = est.named_steps["est"]
    assert type(ridge).__name__ == "Ridge" and ridge.alpha == 0.25
    assert type(build_estimator("logreg", {"C": 4.0}, 0, "binary").named_steps["est"]).__name__ == \
        "LogisticRegression"


def test_mlp_regressor_learns_stops_early_and_calls_on_epoch():
    X, y = make_regression(300, 4, noise=1.0, random_state=1)
    y = y * 100 + 5000  # a large, offset target: the regressor standardizes it
    seen = []
    est = TorchMLPRegressor(max_epochs=300, patience=5, seed=0).fit(X, y, on_epoch=lambda e, m: seen.append(e))
    assert est.n_epochs_ < 300 and seen == list(range(1, len(seen) + 1))
    assert len(seen) == est.n_epochs_ - 1  # the epoch that ran out of patience ends before the hook
    assert est.best_val_loss_ == min(h["val_loss"] for h in est.history_)
    assert evaluate(est, X, y, "regression")["r2"] > 0.9
    stopped = TorchMLPRegressor(max_epochs=50, seed=0).fit(X, y, on_epoch=lambda e, m: e >= 3)
    assert stopped.n_epochs_ == 3
    again = TorchMLPRegressor(max_epochs=20, seed=0).fit(X, y)
    assert np.allclose(again.predict(X[:5]), TorchMLPRegressor(max_epochs=20, seed=0).fit(X, y).predict(X[:5]))


def test_search_spaces_follow_the_data_size():
    knn = {"space": {"n_neighbors": {"type": "int", "low": 1, "high": 50}}, "fixed": {}}
    mlp = {"space": {"batch_size": {"type": "choice", "values": [32, 64, 128]}}, "fixed": {}}
    svm = {"space": {"C": {"type": "loguniform", "low": 0.01, "high": 100.0}}, "fixed": {}}
    small = plan_families({"knn": knn, "mlp": mlp, "svm": svm}, "binary", n_rows=40, n_features=3)
    assert small["knn"]["space"]["n_neighbors"]["high"] == 20  # at most half the training rows
    assert small["mlp"]["space"]["batch_size"]["values"] == [32]  # a batch is at most a quarter of the rows
    assert "svm" in small
    big = plan_families({"knn": knn, "mlp": mlp, "svm": svm}, "regression", n_rows=10_000, n_features=3)
    assert "svm" not in big  # over its row limit: left out
    assert big["knn"]["space"]["n_neighbors"]["high"] == 50 and big["mlp"]["space"]["batch_size"]["values"] == [
        32, 64, 128]
    tiny = plan_families({"knn": knn}, "binary", n_rows=3, n_features=3)
    assert tiny["knn"]["space"]["n_neighbors"] == {"type": "choice", "values": [1]}
    with pytest.raises(MlautoError, match="svm: 10000 training rows > its limit of 5000"):
        plan_families({"svm": svm}, "binary", n_rows=10_000, n_features=3)
    assert families_for_task("regression") == sorted(FAMILIES)
    with pytest.raises(ConfigError, match="tune.task"):
        families_for_task("ranking")


def test_unknown_family_in_config_fails_listing_valid_ones():
    with pytest.raises(ConfigError) as exc:
        make_config(["+model@families.lightgbm=logreg"])
    assert exc.value.key == "families" and exc.value.given == "lightgbm"
    assert {"extra_trees", "knn", "svm", "mlp", "logreg"} <= set(exc.value.allowed)


def test_metric_auto_and_mismatch_are_resolved_per_task():
    assert [metric_for_task("auto", t) for t in ("binary", "multiclass", "regression")] == [
        "roc_auc", "accuracy", "rmse"]
    assert [metric_mode(m) for m in ("rmse", "mae", "log_loss", "r2", "roc_auc")] == ["min", "min", "min", "max",
                                                                                    "max"]
    assert make_config().tune.metric == "auto"
    with pytest.raises(ConfigError) as exc:
        make_config(["tune.task=regression", "tune.metric=roc_auc"])
    assert exc.value.key == "tune.metric" and exc.value.given == "roc_auc"
    assert "rmse" in exc.value.allowed and "accuracy" not in exc.value.allowed and "regression" in str(exc.value)
    with pytest.raises(ConfigError, match="'tune.metric' has invalid value 'auc'; allowed: auto, accuracy"):
        make_config(["tune.metric=auc"])


def test_a_metric_that_does_not_fit_the_detected_task_is_refused(ray_session, tmp_path):
    cfg = make_config([f"root={tmp_path}", "data=diabetes", "tune.metric=accuracy", "models=fast"])
    with pytest.raises(ConfigError) as exc:
        train.train(cfg, {})
    assert exc.value.key == "tune.metric" and "mae, r2, rmse" in str(exc.value) and "regression" in str(exc.value)


def test_a_regression_target_is_split_at_random(tmp_path):
    from mlauto.data.split import split

    frame = load_diabetes(as_frame=True).frame
    train, val, test = split(frame, "target", test_size=0.2, val_size=0.2, seed=0)  # stratify=True by default
    assert len(train) + len(val) + len(test) == len(frame) and len(test) == math.ceil(0.2 * len(frame))


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
        assert bad.status_code == 422 and "finite number" in bad.json()["detail"]  # refused, nothing counted
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


@pytest.mark.parametrize("method,options", [("mutual_info", {}), ("model", {}), ("model", {"estimator": "l1_logistic"})])
def test_feature_selectors_score_a_regression_target_as_a_number(method, options):
    from mlauto.features.selection import SELECTORS

    X, y = load_diabetes(return_X_y=True)  # bmi (2) and s5 (8) carry most of the signal
    scores = SELECTORS.get(method)(k=2, **options)._scores(X, y)
    assert set(np.argsort(scores)[-2:]) <= {2, 8, 3}, scores
    assert 2 in np.argsort(scores)[-2:]


def test_rolling_rmse_and_its_ceiling_trigger_a_performance_drop():
    import pickle

    from mlauto.monitor.performance import PerformanceTracker

    perf = PerformanceTracker(window=10, max_rmse=2.0)
    perf.add_errors([1.0, -1.0] * 4)
    assert perf.rmse == 1.0 and not perf.degraded()  # under the ceiling, and the window is not full
    perf.add_errors([3.0, -3.0] * 5)
    status = perf.status()
    assert status["rmse"] == 3.0 and status["mae"] == 3.0 and status["window_labels"] == 10 and perf.degraded()
    assert status["accuracy"] is None and status["labels_total"] == 18
    perf.reset()
    assert perf.rmse is None and not perf.degraded()
    old = PerformanceTracker(window=10)  # state pickled before regression support had no error window
    del old.__dict__["errors"], old.__dict__["max_rmse"]
    restored = pickle.loads(pickle.dumps(old))
    assert restored.rmse is None and restored.max_rmse is None and not restored.degraded()
    with pytest.raises(ConfigError, match="monitor.max_rmse"):
        make_config(["monitor.max_rmse=-1"])


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
