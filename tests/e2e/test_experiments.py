"""Smoke-runs every experiment file through the pipeline on a tiny budget (lightning-hydra-template style)."""

import json
import time

import pytest
from ray import serve

from tests.helpers import clear_serve, free_port, make_config
from mlauto import context, ops
from mlauto.config.store import experiment_files
from mlauto.monitor import stop_monitor

pytestmark = pytest.mark.slow


# quickstart is run in full, as `make run` runs it, by tests/test_e2e.py
@pytest.mark.parametrize("experiment", [f.stem for f in experiment_files() if f.stem != "quickstart"])
def test_experiment_runs(ray_session, tmp_path, experiment):
    overrides = [
        f"experiment={experiment}", f"root={tmp_path}", "tune.num_samples=2", "models=fast",
        "replay.enabled=false", "serve.blocking=false", f"serve.port={free_port()}", "cluster.namespace=smoke",
        f"serve.app_name=smoke-{experiment}",
        # A smoke run: composes, trains, registers and serves each experiment. The monitor and the
        # sample-size runs are tested on their own (test_monitor, test_select, test_e2e).
        "tune.sample_sizes.fractions=[]",
    ]
    cfg = make_config(overrides)
    if "monitor" in cfg.stages:
        cfg = make_config([*overrides, f"stages=[{','.join(s for s in cfg.stages if s != 'monitor')}]"])
    try:
        summary = ops.run(cfg, str(tmp_path / "out"))
    finally:
        stop_monitor(cfg.monitor.actor_name, "smoke")
        clear_serve()
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["experiment"] == cfg.name == summary["experiment"]
    assert written["model_version"] == "1" and written["trials"]["total"] == 2
    assert ("endpoint" in written and written["endpoint"] is not None) == ("serve" in cfg.stages)


def test_stage_subset_serves_the_registered_champion(trained, tmp_path):
    """`stages=[serve,monitor]` trains nothing: it serves and watches the version behind `champion`."""
    import requests

    cfg, result = trained
    run_cfg = make_config([
        f"root={cfg.root}", f"name={cfg.name}", "stages=[serve,monitor]", "serve.blocking=false",
        f"serve.port={free_port()}", "cluster.namespace=subset", "serve.app_name=subset",
    ])
    try:
        summary = ops.run(run_cfg, str(tmp_path))
        health = requests.get(f"{summary['endpoint']}/health", timeout=30).json()
        drift = requests.get(f"{summary['endpoint']}/drift", timeout=30).json()
    finally:
        stop_monitor(run_cfg.monitor.actor_name, "subset")
        clear_serve()
    assert summary["model_version"] == result.tracked.version == health["model_version"]
    assert drift["model_version"] == result.tracked.version and drift["rows_seen"] == 0
    assert set(summary["stage_seconds"]) == {"serve", "monitor"}


def test_a_failed_run_still_writes_its_summary(ray_session, tmp_path):
    from mlauto.errors import DataError

    cfg = make_config([f"root={tmp_path}", f"data.path={tmp_path}/missing.csv", "data.target=y",
                       "stages=[ingest,prepare,tune]"])
    with pytest.raises(DataError, match="does not exist"):
        ops.run(cfg, str(tmp_path / "out"))
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["status"] == "failed" and "missing.csv" in written["error"]


def _wait_version(url: str, version: str, timeout: float = 30) -> None:
    import requests

    deadline = time.time() + timeout
    while requests.get(f"{url}/health", timeout=30).json()["model_version"] != version:
        assert time.time() < deadline, f"endpoint still not on version {version}"
        time.sleep(0.2)


def test_promote_and_rollback_swap_the_live_endpoint(trained, tmp_path):
    """The CLI's action=promote / action=rollback, against a running endpoint and monitor."""
    import mlflow
    import requests
    from mlflow.tracking import MlflowClient

    cfg, result = trained
    run_cfg = make_config([
        f"root={cfg.root}", f"name={cfg.name}", "stages=[serve,monitor]", "serve.blocking=false",
        f"serve.port={free_port()}", "cluster.namespace=promote", "serve.app_name=promote",
        "serve.admin_token=s3cret", "monitor.persist=false", "monitor.retrain_num_samples=1", "serve.poll_s=0.5",
    ])
    uri = context.tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    source = MlflowClient(uri).get_model_version(context.model_name(cfg), result.tracked.version).source
    new = str(mlflow.register_model(source, context.model_name(cfg)).version)
    original = result.tracked.version
    try:
        url = ops.run(run_cfg, str(tmp_path))["endpoint"]
        live = requests.get(f"{url}/health", timeout=30).json()["model_version"]
        out = ops.promote_version(run_cfg, new)
        assert out == {"model_name": context.model_name(cfg), "previous": live, "champion": new,
                       "endpoint_follows": True, "monitor_reloaded": True}
        _wait_version(url, new)  # replicas follow the alias within serve.poll_s
        assert requests.get(f"{url}/drift", timeout=30).json()["model_version"] == new
        back = ops.rollback(run_cfg)
        assert back["champion"] == live and back["previous"] == new
        _wait_version(url, live)
        # admin routes need the token
        assert requests.post(f"{url}/admin/retrain", timeout=30).status_code == 401
        bad = requests.post(f"{url}/admin/retrain", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert bad.status_code == 403
        ok = requests.post(f"{url}/admin/retrain", headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.status_code == 202, ok.text
        assert requests.post(f"{url}/admin/retrain", headers={"Authorization": "Bearer s3cret"},
                             timeout=30).status_code == 409  # one at a time
        deadline = time.time() + 300
        while not (status := requests.get(f"{url}/drift", timeout=30).json())["retrains"]:
            assert time.time() < deadline
            time.sleep(1)
        assert status["retrains"][-1]["status"] == "finished"
        assert status["retrains"][-1]["reason"] == "manual (POST /admin/retrain)"
        live = requests.get(f"{url}/health", timeout=30).json()["model_version"]
    finally:
        stop_monitor(run_cfg.monitor.actor_name, "promote")
        clear_serve()
        from mlauto.track import promote

        promote(uri, context.model_name(cfg), original)  # other tests share this model: leave it as found
    client = MlflowClient(uri)
    assert str(client.get_model_version_by_alias(context.model_name(cfg), "champion").version) == original


def test_a_failed_retrain_leaves_the_champion_serving(ray_session, tmp_path):
    """The data source disappears after training: the retrain fails, the failure is in the event log
    and the retrain record, and the champion keeps answering."""
    import requests
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_breast_cancer

    csv = tmp_path / "patients.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    cfg = make_config([
        f"root={tmp_path / 'runs'}", "name=failing", "data=file", f"data.path={csv}", "data.target=target",
        "models=fast", "tune.num_samples=2", "serve.blocking=false", "serve.app_name=failing",
        "serve.route_prefix=/failing", "cluster.namespace=failing", "serve.admin_token=t0ken",
        "monitor.retrain_num_samples=1",
    ])
    try:
        summary = ops.run(cfg, str(tmp_path / "out"))
        url, live = summary["endpoint"], summary["model_version"]
        csv.unlink()  # the source is gone
        started = requests.post(f"{url}/admin/retrain", headers={"Authorization": "Bearer t0ken"}, timeout=30)
        assert started.status_code == 202, started.text
        deadline = time.time() + 300
        while not (status := requests.get(f"{url}/drift", timeout=30).json())["retrains"]:
            assert time.time() < deadline
            time.sleep(1)
        failed = status["retrains"][-1]
        assert failed["status"] == "failed" and "patients.csv" in failed["error"], failed
        events = requests.get(f"{url}/events", timeout=30).json()["events"]
        assert [e["event"] for e in events].count("retrain_failed") == 1
        assert status["model_version"] == live and not status["retrain_running"]
        health = requests.get(f"{url}/health", timeout=30).json()
        assert health["model_version"] == live
        row = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(2).to_dict(orient="records")
        assert requests.post(f"{url}/predict", json=row, timeout=30).status_code == 200
        client = MlflowClient(summary["tracking_uri"])
        assert str(client.get_model_version_by_alias("mlauto-failing", "champion").version) == live
        assert len(client.search_model_versions("name = 'mlauto-failing'")) == 1  # nothing half-registered
    finally:
        stop_monitor(cfg.monitor.actor_name, "failing")
        serve.delete("failing")
