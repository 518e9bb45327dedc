"""Smoke-runs every experiment file through the pipeline on a tiny budget (lightning-hydra-template style)."""

import json

import pytest
from ray import serve

from conftest import free_port, make_config
from mlauto import pipeline
from mlauto.config.store import experiment_files
from mlauto.monitor import stop_monitor

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("experiment", [f.stem for f in experiment_files()])
def test_experiment_runs(ray_session, tmp_path, experiment):
    cfg = make_config([
        f"experiment={experiment}", f"root={tmp_path}", "tune.num_samples=2", "models=fast",
        "replay.enabled=false", "serve.blocking=false", f"serve.port={free_port()}", "cluster.namespace=smoke",
        f"serve.app_name=smoke-{experiment}",
    ])
    try:
        summary = pipeline.run(cfg, str(tmp_path / "out"))
    finally:
        stop_monitor(cfg.monitor.actor_name, "smoke")
        serve.shutdown()
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["experiment"] == cfg.name == summary["experiment"]
    assert written["model_version"] == "1" and written["trials"]["total"] == 2
    assert ("endpoint" in written and written["endpoint"] is not None) == ("serve" in cfg.stages)
