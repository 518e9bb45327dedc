"""The experiment report: the numbers in it are right, it renders in a real browser, absent inputs give notes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score
from sklearn.pipeline import Pipeline

from mlauto.data.profile import ProfileAccumulator
from mlauto.features import Preprocessor
from mlauto.report import ReportContent, feature_importance, write_report
from mlauto.report.html import family_best
from mlauto.report.plots import pareto_front
from tests.helpers import Dom, assert_all_rendered, rendered

SECTIONS = {"summary", "profile", "leaderboard", "time-vs-score", "learning-curves", "importance"}


@pytest.fixture(scope="module")
def cancer() -> dict:
    """Breast-cancer data with a categorical and a pure-noise column, a fitted prep+model Pipeline."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    X = X[["mean radius", "mean texture", "worst area", "worst concave points"]].copy()
    X["size"] = pd.cut(X["mean radius"], [0, 12, 16, 40], labels=["small", "medium", "large"]).astype(str)
    X["noise"] = rng.normal(size=len(X))
    y = pd.Series(np.where(y == 1, "benign", "malignant"), name="diagnosis")
    train, val, test = slice(0, 340), slice(340, 455), slice(455, None)
    pipe = Pipeline([("prep", Preprocessor()), ("model", LogisticRegression(max_iter=2000))])
    pipe.fit(X[train], y[train])
    frame = pd.concat([X, y], axis=1)
    profile = ProfileAccumulator({**{c: "numeric" for c in X if c != "size"}, "size": "categorical"},
                                 "diagnosis").update(frame[train]).result()
    return {"X": X, "y": y, "train": train, "val": val, "test": test, "pipe": pipe, "profile": profile}


@pytest.fixture(scope="module")
def leaderboard() -> pd.DataFrame:
    return pd.DataFrame({
        "trial_id": ["t1", "t2", "t3", "t4", "t5"], "family": ["logreg", "logreg", "rf", "rf", "mlp"],
        "status": ["ok", "ok", "ok", "ok", "failed"], "score": [0.95, 0.97, 0.99, 0.96, np.nan],
        "train_seconds": [0.05, 0.08, 1.2, 0.9, np.nan], "param_C": [1.0, 10.0, None, None, None]})


@pytest.fixture(scope="module")
def curves() -> pd.DataFrame:
    rows = []
    for config_id, family, top, cost in (("c1", "logreg", 0.97, 0.02), ("c2", "rf", 0.99, 0.4)):
        for fraction in (0.25, 0.5, 1.0):
            rows.append({"config_id": config_id, "family": family, "params": {"C": 1.0}, "fraction": fraction,
                         "n_train": int(340 * fraction), "train_seconds": cost * fraction,
                         "score": top - 0.1 * (1 - fraction)})
    return pd.DataFrame(rows)


def test_pareto_front_keeps_only_runs_nothing_beats_on_both_time_and_score():
    runs = pd.DataFrame({"train_seconds": [1.0, 2.0, 3.0, 2.5, 0.5, 4.0], "score": [0.8, 0.9, 0.95, 0.85, 0.7, 0.95]})
    assert pareto_front(runs, "max").index.tolist() == [4, 0, 1, 2]  # 3 is slower than 1 and worse; 5 ties 2, slower
    # min mode (an error: lower is better) against a brute-force dominance check
    errors = runs.assign(score=1 - runs["score"])
    brute = [i for i, r in errors.iterrows() if not any(
        o.train_seconds <= r.train_seconds and o.score <= r.score and j != i
        and (o.train_seconds, o.score) != (r.train_seconds, r.score) for j, o in errors.iterrows())]
    front = pareto_front(errors, "min")
    assert sorted(front.index) == brute == [0, 1, 2, 4]
    assert front.index.tolist() == [4, 0, 1, 2]  # fastest first


def test_best_per_family_ignores_failed_trials_and_follows_the_metric_direction(leaderboard):
    board = family_best(leaderboard, "max")
    assert board[["family", "trial_id"]].values.tolist() == [["rf", "t3"], ["logreg", "t2"]]
    assert family_best(leaderboard, "min")[["family", "trial_id"]].values.tolist() == [["logreg", "t1"],
                                                                                      ["rf", "t4"]]


def test_permutation_importance_ranks_raw_columns_and_finds_the_noise(cancer):
    X, y, val = cancer["X"], cancer["y"], cancer["val"]
    importance = feature_importance(cancer["pipe"], X[val], y[val], "binary", "accuracy", seed=0)
    assert list(importance.columns) == ["feature", "importance", "std"]
    assert set(importance["feature"]) == set(X.columns)  # raw input columns, not one-hot outputs
    assert importance["importance"].is_monotonic_decreasing
    noise = importance.set_index("feature").loc["noise"]
    assert abs(noise["importance"]) < 0.03
    assert importance["importance"].iloc[0] > 0.02
    # a min metric (log_loss) gives positive importances too: shuffling a useful column makes it worse
    by_loss = feature_importance(cancer["pipe"], X[val], y[val], "binary", "log_loss", seed=0)
    assert by_loss["importance"].iloc[0] > 0.05
    capped = feature_importance(cancer["pipe"], X[val], y[val], "binary", "accuracy", seed=0, max_rows=50,
                                n_repeats=2)
    assert len(capped) == X.shape[1]


def test_classification_report_renders_every_section_in_a_browser(cancer, leaderboard, curves, tmp_path):
    X, y, val, test, pipe = cancer["X"], cancer["y"], cancer["val"], cancer["test"], cancer["pipe"]
    proba = pipe.predict_proba(X[test])
    importance = feature_importance(pipe, X[val], y[val], "binary", "roc_auc", seed=0, n_repeats=2)
    # a Curves-like result (frame, pareto, fastest_within): the report shows its front as given
    given = SimpleNamespace(frame=curves, pareto=curves[curves["config_id"] == "c1"],
                            fastest_within={"config_id": "c1", "family": "logreg", "fraction": 1.0, "score": 0.97,
                                            "train_seconds": 0.02, "tolerance": 0.02})
    path = write_report(str(tmp_path / "reports" / "cancer.html"), ReportContent(title="cancer <script>alert(1)</script>",
                        task="binary", metric="roc_auc", leaderboard=leaderboard, curves=given,
                        profile=cancer["profile"], y_true=y[test].to_numpy(), proba=proba, classes=pipe.classes_,
                        importance=importance, summary={"data_fingerprint": "f00d", "val_metrics": {"roc_auc": 0.99},
                                                        "stage_seconds": {"tune": 3.5}}))
    text = Path(path).read_text()
    assert "<script>alert(1)" not in text and "src=\"http" not in text  # escaped; nothing external
    dom = rendered(path, tmp_path)
    assert set(dom.sections) == SECTIONS | {"confusion-matrix", "binary-curves"}
    assert not dom.skipped and not dom.failed
    assert dom.h1 == "cancer <script>alert(1)</script>"
    assert_all_rendered(dom)
    figures = {img["section"] for img in dom.images}
    assert figures == {"profile", "time-vs-score", "learning-curves", "confusion-matrix", "binary-curves", "importance"}
    # ROC / PR / calibration of the positive class (the second class, scikit-learn's order) on the test split
    positive = (y[test] == pipe.classes_[1]).to_numpy()
    assert dom.fact("positive class", "binary-curves") == "malignant"
    assert float(dom.fact("roc auc", "binary-curves")) == pytest.approx(roc_auc_score(positive, proba[:, 1]), abs=1e-4)
    assert float(dom.fact("average precision", "binary-curves")) == pytest.approx(
        average_precision_score(positive, proba[:, 1]), abs=1e-4)
    assert float(dom.fact("brier score", "binary-curves")) == pytest.approx(
        np.mean((proba[:, 1] - positive) ** 2), abs=1e-4)
    # the numbers: best family from the leaderboard, the matrix counts of the test split, the profile rows
    assert dom.fact("best family") == "rf" and dom.fact("data fingerprint") == "f00d"
    pred = pipe.classes_[np.argmax(proba, axis=1)]
    matrix = confusion_matrix(y[test], pred, labels=pipe.classes_)
    assert f"accuracy {accuracy_score(y[test], pred):.4f}" in text
    assert dom.fact("benign", "confusion-matrix") == str(matrix[0].sum())  # the class's rows in the test split
    assert dom.fact("malignant", "confusion-matrix") == str(matrix[1].sum())
    assert dom.fact("benign", "profile") == str((y[cancer["train"]] == "benign").sum())  # target balance: rows
    assert "worst concave points" in dom.texts("profile") and "small (" in text  # numeric and categorical columns
    assert dom.fact("trials") == "5 (1 failed)"
    front_ids = [t for t in dom.texts("time-vs-score") if t in ("c1", "c2")]
    assert front_ids == ["c1", "c1", "c1", "c1"]  # three front rows + the fastest-within fact
    assert dom.fact("tolerance", "time-vs-score") == "0.02"


def test_regression_report_shows_residuals_instead_of_a_confusion_matrix(tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    pipe = Pipeline([("prep", Preprocessor()), ("model", Ridge(alpha=0.1))]).fit(X[:300], y[:300])
    pred = pipe.predict(X[300:])
    board = pd.DataFrame({"trial_id": ["a", "b"], "family": ["ridge", "rf"], "status": ["ok", "ok"],
                          "score": [55.0, 60.0], "train_seconds": [0.01, 0.5]})
    importance = feature_importance(pipe, X[300:], y[300:], "regression", "rmse", seed=0, n_repeats=2)
    path = write_report(str(tmp_path / "diabetes.html"), ReportContent(title="diabetes", task="regression", metric="rmse",
                        leaderboard=board, y_true=y[300:].to_numpy(), y_pred=pred, importance=importance))
    dom = rendered(path, tmp_path)
    assert "residuals" in dom.sections and "confusion-matrix" not in dom.sections
    assert_all_rendered(dom)
    assert {img["section"] for img in dom.images} == {"time-vs-score", "residuals", "importance"}
    assert float(dom.fact("rmse", "residuals")) == pytest.approx(np.sqrt(np.mean((y[300:] - pred) ** 2)), rel=1e-3)
    assert dom.fact("best family") == "ridge"  # rmse: lower is better
    assert set(dom.skipped) == {"profile", "learning-curves"}
    assert importance.iloc[0]["feature"] in ("bmi", "s5")  # the diabetes set's strongest predictors


def test_absent_inputs_give_a_note_per_section_and_no_error(tmp_path):
    path = write_report(str(tmp_path / "empty.html"), ReportContent(title="empty", task="multiclass", metric="accuracy",
                        leaderboard=None, profile=str(tmp_path / "missing-profile.json")))
    dom = Dom(Path(path).read_text())
    assert set(dom.sections) == SECTIONS | {"confusion-matrix"}
    assert set(dom.skipped) == SECTIONS - {"summary"} | {"confusion-matrix"}
    assert "missing-profile.json does not exist" in dom.skipped["profile"]
    assert not dom.images and not dom.failed
    # a leaderboard whose trials all failed: the summary still renders, the plot section says why it is empty
    failed = pd.DataFrame({"trial_id": ["x"], "family": ["rf"], "status": ["failed"], "score": [np.nan],
                           "train_seconds": [np.nan]})
    dom = Dom(Path(write_report(str(tmp_path / "failed.html"), ReportContent(title="failed", task="binary", metric="roc_auc",
                                leaderboard=failed))).read_text())
    assert dom.fact("trials") == "1 (1 failed)" and "time-vs-score" in dom.skipped and not dom.failed
    assert "binary-curves" in dom.skipped  # a binary task without probabilities: a note, not an error


def test_binary_curves_on_a_test_split_with_one_class_give_a_note_not_a_broken_report(tmp_path):
    path = write_report(str(tmp_path / "one.html"), ReportContent(
        title="one class", task="binary", metric="roc_auc", leaderboard=None, y_true=np.array(["a"] * 20),
        proba=np.tile([0.7, 0.3], (20, 1)), classes=np.array(["a", "b"])))
    dom = Dom(Path(path).read_text())
    assert dom.failed == ["binary-curves"] and "only one class" in Path(path).read_text()
    assert [img["section"] for img in dom.images] == ["confusion-matrix"]
