"""The quickstart through the real launcher, against the test session's Ray cluster.

The command returns (cluster mode), leaving the endpoint and the monitor up, so the test can
call them over HTTP the way a user would.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import requests
from mlflow.tracking import MlflowClient

from tests.helpers import free_port, shutdown_serve
from mlauto.monitor import stop_monitor
from mlauto.track import CHAMPION

pytestmark = pytest.mark.slow

NUM_SAMPLES, RETRAIN_SAMPLES = 4, 2


@pytest.fixture(scope="module")
def quickstart(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    port = free_port()
    # Serve's HTTP options apply only when Serve first starts on a cluster: integration tests may have
    # started it on another port, so the run must find none, as on a fresh cluster.
    shutdown_serve()
    cmd = [
        sys.executable, "-m", "mlauto", "experiment=quickstart", f"root={root}", f"hydra.run.dir={root}/out",
        f"cluster.address={ray_session['address']}", "cluster.namespace=e2e", f"serve.port={port}",
        "serve.app_name=e2e", f"tune.num_samples={NUM_SAMPLES}", f"monitor.retrain_num_samples={RETRAIN_SAMPLES}",
        "models=fast", "tune.cv_folds=0", "tune.portfolio=0",
        # the champion and the retrain's challenger are Caruana ensembles (kept even without a gain): the
        # loop must serve, monitor and retrain an ensemble like any model
        "tune.ensemble.method=caruana", "tune.ensemble.min_gain=-1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=540)
    log = proc.stdout + proc.stderr
    try:
        assert proc.returncode == 0, log[-6000:]
        yield root, port, log
    finally:
        stop_monitor("mlauto-monitor", "e2e")
        shutdown_serve()


def test_console_shows_predictions_drift_and_retrain(quickstart):
    _, _, log = quickstart
    assert "predictions served: 100 held-out rows" in log
    assert "drift alarms on held-out rows: 0" in log
    assert "DRIFT detected" in log
    assert "retrain produced mlauto-quickstart version 2" in log


def test_console_without_a_terminal_is_quiet_and_the_log_file_keeps_the_rest(quickstart):
    root, _, log = quickstart  # captured: stdout is not a terminal
    assert "\x1b[" not in log  # no escape codes (progress bars, coloured prefixes)
    assert "ray/tune/history" not in log  # TensorBoardX's warning about Tune's history list
    for noise in ("Configuration for experiment", "View detailed results here", "Created version",
                  "Starting execution of Dataset", "Saving scikit-learn models in the pickle"):
        assert noise not in log, noise
    assert "== stage tune done in" in log and "trials 4/4 done" in log  # a line per stage, Tune's progress line
    where = log[log.index("where everything is:"):]
    for item in ("summary:", "report:", "log:", "MLflow UI: mlflow ui", "endpoint:"):
        assert item in where, item
    kept = (Path(root) / "out" / "mlauto.log").read_text()
    assert "Created version '1'" in kept and "View detailed results here" in kept  # left off the console only


def test_summary_is_complete(quickstart):
    root, port, _ = quickstart
    summary = json.loads((Path(root) / "out" / "summary.json").read_text())
    for key in ("experiment", "data_fingerprint", "rows", "best_family", "best_params", "val_metrics",
                "test_metrics", "mlflow_run_id", "model_name", "model_version", "endpoint", "stage_seconds"):
        assert summary.get(key) not in (None, {}, ""), key
    assert summary["experiment"] == "quickstart"
    assert summary["rows"] == {"train": 341, "val": 114, "test": 114, "quarantined": 0}
    assert summary["endpoint"] == f"http://127.0.0.1:{port}"
    assert set(summary["stage_seconds"]) >= {"ingest", "prepare", "tune", "track", "serve", "monitor", "replay"}
    assert summary["replay"]["retrain"]["status"] == "finished"
    assert set(summary) == QUICKSTART_SUMMARY_KEYS, "summary.json's keys changed: update the docs, or restore them"


# summary.json of the quickstart (every stage, replay on, no ingest schedule), as written before the
# redesign split mlauto/pipeline.py: ops.run's own keys, then train.training_summary's; "refit" (which
# rows the served model saw, tune.refit) since the automation-quality work.
QUICKSTART_SUMMARY_KEYS = {
    "experiment", "stages", "output_dir", "tracking_uri", "model_name", "endpoint",
    "data_fingerprint", "snapshot", "rows", "quarantine", "data_quality", "best_family", "best_params", "task",
    "metric", "val_metrics", "test_metrics", "trials", "mlflow_run_id", "model_version", "family_leaderboard",
    "ensemble", "fastest_within", "report", "refit",
    "monitor", "replay", "status", "stage_seconds", "total_seconds",
}


def test_champion_answers_over_http(quickstart):
    root, port, _ = quickstart
    summary = json.loads((Path(root) / "out" / "summary.json").read_text())
    schema = requests.get(f"http://127.0.0.1:{port}/model", timeout=30).json()["schema"]
    record = {c["name"]: (c["min"] + c["max"]) / 2 for c in schema}
    resp = requests.post(f"http://127.0.0.1:{port}/predict", json=record, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"][0] in (0, 1)
    client = MlflowClient(summary["tracking_uri"])
    champion = client.get_model_version_by_alias("mlauto-quickstart", CHAMPION)
    assert resp.json()["model"]["version"] == str(champion.version)


def test_monitor_saw_the_replay_and_retrained(quickstart):
    root, port, _ = quickstart
    status = requests.get(f"http://127.0.0.1:{port}/drift", timeout=30).json()
    assert status["rows_seen"] >= 200 and status["tests_run"] >= 4 and status["drift_count"] >= 1
    assert status["last_test"]["is_drift"] and len(status["last_test"]["p_vals"]) == 30
    actor = ray.get_actor("mlauto-monitor", namespace="e2e")
    assert ray.get(actor.status.remote())["rows_seen"] == status["rows_seen"]
    retrain = status["retrains"][-1]
    assert retrain["status"] == "finished" and retrain["version"] == "2"
    # the 100 labelled replay rows: the newest 50 judge challenger vs champion, the other 50 trained it
    assert retrain["production_rows"] == 50 and retrain["judged_on"] == "recent labelled traffic"
    events = requests.get(f"http://127.0.0.1:{port}/events", timeout=30).json()["events"]
    kinds = [e["event"] for e in events]
    assert "drift" in kinds and "retrain_started" in kinds and "retrain_finished" in kinds
    assert ("promotion" in kinds) != ("rejection" in kinds)
    started = next(e for e in events if e["event"] == "retrain_started")
    assert started["labelled_rows"] == 100


def test_an_ensemble_champion_serves_feeds_the_monitor_and_is_retrained(quickstart):
    root, port, _ = quickstart
    summary = json.loads((Path(root) / "out" / "summary.json").read_text())
    assert summary["best_family"] == "ensemble" and summary["ensemble"]["kept"], summary["ensemble"]
    assert summary["ensemble"]["method"] == "caruana" and len(summary["ensemble"]["members"]) >= 2
    assert summary["replay"]["accuracy_clean"] >= 0.9  # the ensemble's answers over HTTP, against the labels
    client = MlflowClient(summary["tracking_uri"])
    for version in ("1", "2"):  # the champion and the challenger the drift-triggered retrain trained
        run = client.get_run(client.get_model_version("mlauto-quickstart", version).run_id)
        assert run.data.params.get("family", run.data.tags.get("mlauto.family")) == "ensemble", run.data.params
    status = requests.get(f"http://127.0.0.1:{port}/drift", timeout=30).json()
    assert status["rows_seen"] >= 200 and status["retrains"][-1]["status"] == "finished"


def test_mlflow_holds_every_trial_and_both_versions(quickstart):
    root, _, _ = quickstart
    summary = json.loads((Path(root) / "out" / "summary.json").read_text())
    client = MlflowClient(summary["tracking_uri"])
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == NUM_SAMPLES + RETRAIN_SAMPLES
    versions = client.search_model_versions("name = 'mlauto-quickstart'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    retrained = client.get_model_version("mlauto-quickstart", "2")
    assert retrained.tags["mlauto.decision"] in ("promoted", "rejected")
    assert retrained.tags["mlauto.judged_on"] == "recent labelled traffic"
    assert retrained.tags["mlauto.judged_rows"] == "50"


def test_events_are_readable_from_the_cli(quickstart):
    root, _, _ = quickstart
    proc = subprocess.run([sys.executable, "-m", "mlauto", "name=quickstart", f"root={root}", "action=events",
                           f"hydra.run.dir={root}/events-out"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "drift" in kinds and "retrain_finished" in kinds
    assert all(isinstance(e["time"], float) for e in events)


def test_local_run_serves_until_interrupted(trained, tmp_path):
    """`make run`'s path: a local Ray of its own, the endpoint up until Ctrl-C, then everything stopped.

    It serves the champion the `trained` fixture registered: the blocking path is the same after training.
    """
    import signal
    import time

    port = free_port()
    log_path = tmp_path / "run.log"
    cfg, _ = trained
    cmd = [sys.executable, "-m", "mlauto", f"root={cfg.root}", f"name={cfg.name}", f"serve.port={port}",
           "stages=[serve]", "cluster.num_cpus=1", f"hydra.run.dir={tmp_path}/out"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while "Ctrl-C to stop" not in log_path.read_text():
            assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-4000:]
            time.sleep(1)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
