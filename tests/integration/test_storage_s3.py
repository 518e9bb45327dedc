"""root=s3://...: the training run and batch scoring write everything under the bucket, nothing on the
driver's disk (issue 10, point 1). The bucket lives on a moto server on 127.0.0.1 (``moto_server``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlauto import storage
from tests.helpers import make_config, s3_keys

pytestmark = pytest.mark.ray


def _data_with_bad_rows() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 4, 5, -1]].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["target"] = frame["target"].astype(float)
    frame.loc[:4, "target"] = np.nan  # five rows without a label: quarantined
    return frame


def test_train_and_batch_scoring_on_s3_root(ray_session: dict, s3_root: str, tmp_path) -> None:
    from mlauto import context, train
    from mlauto.config.schema import PredictConf
    from mlauto.serve.batch import score_file
    from mlauto.track import CHAMPION, set_alias

    frame = _data_with_bad_rows()
    data_uri = storage.join(storage.dirname(s3_root), "input", "cancer.csv")
    storage.write_csv(frame, data_uri)
    cfg = make_config([f"root={s3_root}", f"data.path={data_uri}", "data.name=null",
                       f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "models=fast", "tune.num_samples=2",
                       "tune.sample_sizes.fractions=[]", "name=s3"])
    assert cfg.root == s3_root and cfg.data.path == data_uri  # URIs are kept as given, not made "absolute"
    result = train.train(cfg, {})
    keys = s3_keys(s3_root)
    prefix = s3_root.split("/", 3)[3]

    def under(folder: str) -> list[str]:
        return [k for k in keys if k.startswith(f"{prefix}/{folder}/")]

    fp = result.snapshot.fingerprint
    assert f"{prefix}/snapshots/{fp}.parquet" in keys and f"{prefix}/snapshots/{fp}.json" in keys
    assert result.snapshot.path == f"{s3_root}/snapshots/{fp}.parquet"
    assert f"{prefix}/quarantine/{fp}.parquet" in keys
    quarantined = storage.read_parquet(f"{s3_root}/quarantine/{fp}.parquet")
    assert len(quarantined) == 5 and set(quarantined["reason"]) == {"missing target"}
    assert f"{prefix}/clean/{fp}.parquet" in keys
    assert f"{prefix}/profiles/{fp}.json" in keys and f"{prefix}/profiles/schema-s3.json" in keys
    assert any(k.endswith(".html") for k in under("reports"))
    assert any(k.endswith("/features.json") for k in under("features"))
    assert any(k.endswith("/family_leaderboard.csv") for k in under("selection"))
    assert sum(k.endswith("/result.json") for k in under("ray_results")) == len(result.search.trials) == 2
    assert any(k.endswith("/bundle/meta.json") for k in under("mlartifacts"))  # MLflow's artifacts, via boto3
    assert not [p for p in tmp_path.iterdir() if p.name != "mlflow.db"]  # nothing else on the driver's disk

    # Batch scoring reads and writes the bucket too; rows serving would refuse go to its quarantine file.
    set_alias(context.tracking_uri(cfg), context.model_name(cfg), result.tracked.version, CHAMPION)
    to_score = frame.drop(columns=["target"]).head(50).astype(object)
    to_score.iloc[0, 0] = "not a number"
    score_in = storage.join(storage.dirname(s3_root), "score", "in.csv")
    storage.write_csv(to_score, score_in)
    out = storage.join(storage.dirname(s3_root), "score", "out.parquet")
    scored = score_file(PredictConf(input=score_in, output=out), context.tracking_uri(cfg), context.model_name(cfg))
    assert (scored.rows_in, scored.rows_scored, scored.rows_quarantined) == (50, 49, 1)
    predictions = storage.read_parquet(out)
    assert len(predictions) == 49 and "prediction" in predictions.columns
    assert scored.quarantine and storage.exists(scored.quarantine) and scored.quarantine.startswith("s3://")
