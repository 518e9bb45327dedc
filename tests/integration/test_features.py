"""Feature steps through the real pipeline: training and serving give identical features, selection
scores land in MLflow. The steps themselves: tests/unit/features/test_features.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import make_config, mixed_frame


@pytest.fixture(scope="module")
def rich_trained(ray_session, tmp_path_factory):
    """The real pipeline on a CSV with a datetime, a high-cardinality column and noise, features=rich."""
    from mlauto import context, train

    root = tmp_path_factory.mktemp("rich")
    frame, y = mixed_frame(400, seed=3)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    rng = np.random.default_rng(99)
    for i in range(3):
        frame[f"noise{i}"] = rng.normal(size=len(frame))
    frame["label"] = y
    path = root / "rich.csv"
    frame.to_csv(path, index=False)
    cfg = make_config([f"root={root}", "data=file", f"data.path={path}", "data.target=label", "models=fast",
                       "tune.num_samples=2", "name=rich", "features=rich",
                       "features.selection=[{method: variance}, {method: mutual_info, k: 2}]"])
    return cfg, train.train(cfg, {})


@pytest.mark.slow
def test_training_and_serving_give_identical_features(rich_trained):
    from mlauto import context, train
    from mlauto.serve.predict import score_many
    from mlauto.serve.validation import RequestValidator

    cfg, result = rich_trained
    features = result.splits.features
    rows = result.splits.test[features]
    prep = result.final.pipeline.named_steps["prep"]
    assert {"ts_year", "ts_hour", "city"} <= set(prep.transformed_names_)
    in_process = prep.transform(rows)
    bundle = context.loader_for(cfg)(result.tracked.version)
    loaded = bundle.pipeline.named_steps["prep"].transform(rows)
    assert np.array_equal(in_process, loaded, equal_nan=True)
    # a request as JSON (full float precision): datetimes as strings, missing as null
    plain = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    records = json.loads(json.dumps(plain, default=str))
    assert isinstance(records[0]["ts"], str)
    validator = RequestValidator(bundle.schema)
    served = score_many(bundle.pipeline, validator.columns, [validator(records)])[0]
    diff = ~np.isclose(served.features, in_process, rtol=0, atol=0, equal_nan=True)
    assert not diff.any(), [(prep.feature_names_out_[j], served.features[i, j], in_process[i, j])
                            for i, j in zip(*np.nonzero(diff))][:5]
    assert np.allclose(served.proba, result.final.pipeline.predict_proba(rows))


@pytest.mark.slow
def test_selection_scores_are_tracked_in_mlflow(rich_trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlauto import context, train

    cfg, result = rich_trained
    prep = result.final.pipeline.named_steps["prep"]
    assert sorted(prep.feature_names_out_) == ["city", "x"]  # the informative ones
    run = MlflowClient(context.tracking_uri(cfg)).get_run(result.tracked.run_id)
    assert run.data.metrics["features_out"] == 2
    assert run.data.metrics["features_before_selection"] == len(prep.transformed_names_)
    mlflow.set_tracking_uri(context.tracking_uri(cfg))
    report = mlflow.artifacts.load_dict(f"runs:/{result.tracked.run_id}/features/features.json")
    assert report["kept"] == prep.feature_names_out_
    scores = report["selection"][1]["scores"]
    assert set(scores) >= {"noise0", "noise1", "noise2", "x", "city"}
    assert min(scores[n] for n in report["kept"]) >= max(scores[f"noise{i}"] for i in range(3))
    table = pd.read_csv(mlflow.artifacts.download_artifacts(
        f"runs:/{result.tracked.run_id}/feature_selection/feature_scores.csv"))
    assert set(table.loc[table["kept"] & (table["selector"] == 1), "feature"]) == set(prep.feature_names_out_)
    bundle = context.loader_for(cfg)(result.tracked.version)
    assert bundle.meta["feature_selection"] == report["selection"]


@pytest.mark.slow
def test_native_categoricals_reach_the_served_boosters(ray_session, tmp_path):
    """features=native with LightGBM and XGBoost: trials, the refit on every row (a fresh preprocessor)
    and the registered model all split the city codes as categories; an unseen city is served."""
    from mlauto import context, train

    frame, y = mixed_frame(400, seed=5)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["label"] = y
    path = tmp_path / "native.csv"
    frame.to_csv(path, index=False)
    cfg = make_config([f"root={tmp_path}", "data=file", f"data.path={path}", "data.target=label", "name=native",
                       "features=native", "models.include=[lightgbm,xgboost]", "tune.num_samples=4",
                       "tune.portfolio=2", "tune.portfolio_source=hand",  # one start point per family
                       "tune.refit=all", "tune.sample_sizes.fractions=[]"])
    result = train.train(cfg, {})
    assert {t.family for t in result.search.trials} == {"lightgbm", "xgboost"}
    assert all(t.status == "ok" and t.params["categorical_columns"] for t in result.search.trials)
    prep, model = result.final.pipeline.named_steps["prep"], result.final.pipeline.named_steps["model"]
    names = prep.feature_names_out_
    assert sorted(names[i] for i in prep.category_codes_) == ["city", "color"]
    assert tuple(model.get_params()["categorical_columns"]) == tuple(prep.category_codes_)
    assert result.final.test_metrics["accuracy"] > 0.8
    bundle = context.loader_for(cfg)(result.tracked.version)
    rows = result.splits.test[result.splits.features]
    assert (bundle.pipeline.predict(rows) == result.final.pipeline.predict(rows)).all()
    unseen = rows.head(2).assign(city=["nowhere", None])
    assert set(bundle.pipeline.predict(unseen)) <= {"yes", "no"}
