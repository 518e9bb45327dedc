"""tracking=server (issue 10, point 2): an MLflow server on the session's own PostgreSQL with proxied
artifacts; and the SQL data source read from that PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import make_config

pytestmark = pytest.mark.ray


def test_sql_source_reads_postgres(ray_session, postgres, tmp_path) -> None:
    import sqlalchemy

    from mlauto.data import SQLSource, ingest

    frame = pd.DataFrame({"id": np.arange(40), "x": np.arange(40) * 0.5, "c": list("ab") * 20, "y": [0, 1] * 20})
    engine = sqlalchemy.create_engine(postgres.url)
    with engine.begin() as conn:
        frame.to_sql("orders", conn, index=False, if_exists="replace")
    engine.dispose()
    snap = ingest(SQLSource(postgres.url, query="SELECT * FROM orders ORDER BY id"), str(tmp_path / "snaps"))
    assert snap.n_rows == 40 and snap.columns == ["id", "x", "c", "y"]
    pd.testing.assert_frame_equal(snap.to_pandas(), frame, check_dtype=False)
    by_table = ingest(SQLSource(postgres.url, table="orders"), str(tmp_path / "snaps2"))
    assert by_table.n_rows == 40


def test_train_registers_through_the_tracking_server(ray_session, mlflow_server, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    from mlauto import context, train

    cfg = make_config(["tracking=server", f"tracking.uri={mlflow_server.url}", f"root={tmp_path / 'runs'}",
                       "models=fast", "tune.num_samples=2", "tune.sample_sizes.fractions=[]", "name=srv"])
    assert cfg.tracking.uri == mlflow_server.url
    result = train.train(cfg, {})
    client = MlflowClient(mlflow_server.url)
    version = client.get_model_version(context.model_name(cfg), result.tracked.version)
    assert version.run_id == result.tracked.run_id
    experiment = client.get_experiment_by_name("srv")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    # The artifacts landed in the server's destination, not under the run's root.
    destination = mlflow_server.artifacts_destination
    assert list(Path(destination).rglob("bundle/meta.json"))
    assert not (tmp_path / "runs" / "mlartifacts").exists() and not (tmp_path / "runs" / "mlflow.db").exists()
    loaded = context.loader_for(cfg)(result.tracked.version)  # the serving path loads the model back through the server
    assert loaded.version == result.tracked.version
