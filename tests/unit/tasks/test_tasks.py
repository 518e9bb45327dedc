"""Tasks (binary, multiclass, regression) without Ray: detection, metrics, task-aware families and spaces.
Each task through the real pipeline, serving and monitoring: tests/integration/test_tasks.py."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_classification, make_regression

from tests.helpers import make_config
from mlauto import train
from mlauto.tasks import detect_task, metric_for_task, metric_mode
from mlauto.errors import ConfigError, MlautoError
from mlauto.models import FAMILIES, TorchMLPRegressor, build_estimator, families_for_task, plan_families
from mlauto.tune.metrics import evaluate

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
        make_config(["+model@families.catboost=logreg"])
    assert exc.value.key == "families" and exc.value.given == "catboost"
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


def test_a_regression_target_is_split_at_random(tmp_path):
    from mlauto.config.schema import PrepareConf
    from mlauto.data.split import split

    frame = load_diabetes(as_frame=True).frame
    train, val, test = split(frame, "target", PrepareConf(), 0)  # stratify=True by default
    assert len(train) + len(val) + len(test) == len(frame) and len(test) == math.ceil(0.2 * len(frame))


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
