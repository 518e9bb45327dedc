"""Tracking records, the runs listing and comparison, reproducing a run from its record."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mlauto import context
from mlauto.errors import ReproduceError, RunNotFoundError
from mlauto.reproduce import format_reproduce, load_record, reproduce, resolve_data
from mlauto.track import CHAMPION
from mlauto.track.lineage import PACKAGES
from mlauto.track.runs import compare_runs, find_run, format_compare, format_runs, list_runs



def _client_and_runs(trained):
    cfg, result = trained
    client = MlflowClient(context.tracking_uri(cfg))
    parent = client.get_run(result.tracked.run_id)
    children = [client.get_run(r) for r in result.tracked.trial_run_ids]
    return cfg, result, client, parent, children


def test_child_runs_record_params_metrics_seconds_rows_and_family(trained):
    cfg, result, _, _, children = _client_and_runs(trained)
    assert len(children) == len(result.search.trials)
    n_train = result.splits.counts()["train"]
    for run, trial in zip(children, result.search.trials):
        assert run.data.tags["mlflow.parentRunId"] == result.tracked.run_id
        assert run.data.params["family"] == run.data.tags["mlauto.family"] == trial.family
        assert json.loads(run.data.tags["mlauto.params_json"]) == trial.params  # typed, for reproduce
        assert {k: run.data.params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
        assert int(run.data.params["n_train"]) == n_train == int(run.data.metrics["n_train"])
        assert run.data.metrics["train_seconds"] == pytest.approx(trial.metrics["train_seconds"])
        assert run.data.metrics["score"] == pytest.approx(trial.score)
        assert run.data.metrics[f"val_{result.search.metric}"] == pytest.approx(trial.score)


def test_parent_run_records_lineage_config_packages_and_artifacts(trained):
    cfg, result, client, parent, _ = _client_and_runs(trained)
    tags = parent.data.tags
    assert tags["mlauto.data_fingerprint"] == result.snapshot.fingerprint
    assert tags["mlauto.train_fingerprint"] == result.snapshot.fingerprint  # no production rows
    assert tags["mlauto.seed"] == parent.data.params["seed"] == str(cfg.seed)
    commit = tags["mlauto.git_commit"]
    assert commit == "unknown" or len(commit) == 40
    assert all(f"{name}==" in tags["mlauto.packages"] for name in PACKAGES)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.json", "config.yaml", "packages.json", "leaderboard.csv", "plots", "bundle"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/time_vs_score.png" in plots
    local = client.download_artifacts(parent.info.run_id, "config.yaml")
    with open(local) as fh:
        logged = yaml.safe_load(fh)
    assert logged["seed"] == cfg.seed and logged["data"]["target"] == cfg.data.target
    assert logged["tune"]["num_samples"] == cfg.tune.num_samples
    with open(client.download_artifacts(parent.info.run_id, "packages.json")) as fh:
        packages = json.load(fh)
    import sklearn

    assert packages["scikit-learn"] == sklearn.__version__ and set(PACKAGES) <= set(packages)


def test_champion_is_registered_with_a_signature(trained):
    cfg, result, client, _, _ = _client_and_runs(trained)
    from mlflow.models import get_model_info

    mv = client.get_model_version_by_alias(context.model_name(cfg), CHAMPION)
    assert mv.run_id == result.tracked.run_id
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(context.tracking_uri(cfg))  # get_model_info reads the global registry
    try:
        info = get_model_info(f"models:/{context.model_name(cfg)}@{CHAMPION}")
    finally:
        mlflow.set_tracking_uri(previous)
    inputs = [c["name"] for c in info.signature.inputs.to_dict()]
    assert inputs == result.splits.features and info.signature.outputs is not None


def test_mlp_trials_log_their_epoch_history_as_steps(ray_session, tmp_path):
    from mlauto.track import ensure_experiment
    from mlauto.track.store import log_trials
    from tests.helpers import search

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    families = {"mlp": {"space": {"hidden": {"type": "choice", "values": [8]}},
                        "fixed": {"max_epochs": 6, "patience": 100, "batch_size": 32}}}
    search = search((X[:140], y[:140], X[140:], y[140:]), families, metric="accuracy", mode="max",
                        num_samples=1, algorithm="random", seed=0, storage_path=str(tmp_path / "ray"), name="mlp")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = ensure_experiment(uri, "mlp", str(tmp_path / "art"))
    client = MlflowClient(uri)
    parent = client.create_run(exp)
    (run_id,) = log_trials(client, exp, parent.info.run_id, search, {})
    train_loss = client.get_metric_history(run_id, "epoch_train_loss")
    val_loss = client.get_metric_history(run_id, "epoch_val_loss")
    assert sorted(m.step for m in train_loss) == list(range(1, 7)) and len(val_loss) == 6
    assert all(np.isfinite(m.value) and m.value > 0 for m in train_loss)


def test_runs_lists_the_training_run_and_its_trials(trained):
    cfg, result, _, _, children = _client_and_runs(trained)
    rows = list_runs(context.tracking_uri(cfg), cfg.name)
    mine = [r for r in rows if r["run_id"] == result.tracked.run_id or r["parent_id"] == result.tracked.run_id]
    assert mine[0]["kind"] == "parent" and mine[0]["family"] == result.final.family
    assert mine[0]["value"] == pytest.approx(result.final.val_metrics[result.search.metric])
    assert {r["run_id"] for r in mine[1:]} == {c.info.run_id for c in children}
    assert all(r["kind"] == "child" and r["status"] == "FINISHED" and r["seconds"] > 0 for r in mine[1:])
    scores = [r["value"] for r in mine[1:]]
    assert scores == sorted(scores, reverse=True)  # roc_auc: best first
    table = format_runs(rows)
    assert result.tracked.run_id in table and f"{result.search.metric}=" in table
    assert f"  {children[0].info.run_id}" in table  # trials indented under their training run


def test_compare_marks_the_differences(trained):
    cfg, result, _, _, children = _client_and_runs(trained)
    a, b = children[0], next(c for c in children[1:] if c.data.metrics["score"] != children[0].data.metrics["score"])
    comparison = compare_runs(context.tracking_uri(cfg), [a.info.run_id, b.info.run_id[:10]], cfg.name)
    rows = {(r["section"], r["key"]): r for r in comparison["rows"]}
    assert rows[("metric", "score")]["differs"]
    assert rows[("metric", "score")]["values"] == [a.data.metrics["score"], b.data.metrics["score"]]
    assert not rows[("tag", "mlauto.data_fingerprint")]["differs"]
    assert not rows[("run", "parent")]["differs"]
    text = format_compare(comparison)
    score_line = next(line for line in text.splitlines() if "metric score" in line)
    fp_line = next(line for line in text.splitlines() if "tag mlauto.data_fingerprint" in line)
    assert score_line.startswith("*") and fp_line.startswith(" ")


def test_unknown_run_id_is_a_clear_picklable_error(trained):
    cfg, _ = trained
    with pytest.raises(RunNotFoundError, match="action=runs") as info:
        find_run(context.tracking_uri(cfg), "0123456789abcdef0123456789abcdef", cfg.name)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and "0123456789abcdef" in str(again)
    with pytest.raises(RunNotFoundError):
        compare_runs(context.tracking_uri(cfg), ["nope-nope", "nope-nope-2"], cfg.name)


def test_reproducing_trials_gives_the_same_score(trained):
    cfg, result, _, _, children = _client_and_runs(trained)
    uri = context.tracking_uri(cfg)
    run = next(c for c in children if c.data.params["family"] == "logreg" and c.info.status == "FINISHED")
    out = reproduce(uri, run.info.run_id[:12], cfg.root, cfg.name)  # a unique prefix is enough
    assert out["status"] == "exact" and out["ok"], out
    assert out["run_id"] == run.info.run_id and out["params"] == json.loads(run.data.tags["mlauto.params_json"])
    assert out["reproduced"] == run.data.metrics["score"] and out["difference"] == 0.0
    assert out["n_train"] == out["recorded_n_train"] == result.splits.counts()["train"]
    assert out["data_fingerprint"] == result.snapshot.fingerprint
    parent = reproduce(uri, result.tracked.run_id, cfg.root, cfg.name)
    assert parent["kind"] == "parent" and parent["family"] == result.final.family
    assert parent["reproduced"] == pytest.approx(result.final.val_metrics[result.search.metric], abs=1e-9)
    assert "status     exact" in format_reproduce(parent) or parent["status"] == "within tolerance"


def test_reproduce_refuses_when_its_data_is_gone(trained, tmp_path):
    cfg, result = trained
    uri = context.tracking_uri(cfg)
    record = load_record(uri, result.tracked.trial_run_ids[0], cfg.name)
    assert resolve_data(record, cfg.root) == result.snapshot.path
    retrained = dataclasses.replace(record, production_rows=12, train_fingerprint=record.fingerprint[:8] + "pabcdef0",
                                    train_data=str(tmp_path / "gone.parquet"))
    with pytest.raises(ReproduceError, match="12 labelled production rows.*no longer exists"):
        resolve_data(retrained, cfg.root)
    kept = tmp_path / "kept.parquet"
    kept.write_bytes(b"")
    assert resolve_data(dataclasses.replace(retrained, train_data=str(kept)), cfg.root) == str(kept)
    pruned = dataclasses.replace(record, fingerprint="feedfacefeedface", train_fingerprint="feedfacefeedface")
    with pytest.raises(ReproduceError, match="action=snapshots"):
        resolve_data(pruned, str(tmp_path))


def _cli(args, root):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "mlauto", "name=unit", f"root={root}",
                           f"hydra.run.dir={root}/cli-out", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_runs_cli_prints_the_table(trained):
    cfg, result = trained
    proc = _cli(["action=runs"], cfg.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].startswith("run_id") and result.tracked.run_id in proc.stdout


@pytest.mark.slow
def test_reproduce_cli(trained, ray_session):
    cfg, result = trained
    proc = _cli(["action=reproduce", f"run_id={result.tracked.trial_run_ids[0]}",
                 f"cluster.address={ray_session['address']}"], cfg.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status     exact" in proc.stdout
    proc = _cli(["action=reproduce", "run_id=0123456789abcdef0123456789abcdef"], cfg.root)
    assert proc.returncode == 1 and "action=runs" in proc.stdout + proc.stderr
