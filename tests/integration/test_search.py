"""Searches on real Ray Tune: grid, bayesopt, seeds, ASHA, failing trials, resume after the driver dies.
Spaces, bounds and config checks without Ray: tests/unit/tune/test_search.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import HIST, LOGREG, MLP, REPO_ROOT, search


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X[:160], y[:160], X[160:], y[160:]


def _search(tmp_path, families, **kw):
    args = dict(metric="accuracy", mode="max", num_samples=4, algorithm="random", seed=0,
                storage_path=str(tmp_path), name="t", progress_interval_s=0.5)
    args.update(kw)
    return search(_data(), families, **args)


def test_grid_runs_every_point_once(ray_session, tmp_path):
    result = _search(tmp_path, {"logreg": LOGREG, "hist_gb": HIST}, algorithm="grid", grid_points_per_param=2,
                     num_samples=99)
    assert len(result.trials) == 6 and all(t.status == "ok" for t in result.trials)
    hist = sorted((t.params["max_leaf_nodes"], t.params["learning_rate"]) for t in result.trials
                  if t.family == "hist_gb")
    assert hist == [(n, lr) for n in (4, 16) for lr in (0.1, 0.3)]
    assert all(t.params["max_iter"] == 20 for t in result.trials if t.family == "hist_gb")  # fixed params kept
    logreg = sorted(round(t.params["C"], 6) for t in result.trials if t.family == "logreg")
    assert logreg == [0.01, 100.0]
    assert result.progress["done"] == 6


def test_bayesopt_splits_the_budget_and_records_every_trial(ray_session, tmp_path):
    result = _search(tmp_path, {"logreg": LOGREG, "hist_gb": HIST}, algorithm="bayesopt", num_samples=6, seed=1)
    by_family = {f: [t for t in result.trials if t.family == f] for f in ("logreg", "hist_gb")}
    assert {f: len(ts) for f, ts in by_family.items()} == {"logreg": 3, "hist_gb": 3}
    assert all(t.status == "ok" and 0.5 < t.score <= 1.0 for t in result.trials)
    assert all(0.01 <= t.params["C"] <= 100.0 for t in by_family["logreg"])
    assert all(t.params["learning_rate"] == 0.1 for t in by_family["hist_gb"])  # choices: the first value
    assert len({t.params["C"] for t in by_family["logreg"]}) == 3  # the GP proposes new points
    assert result.best.score == max(t.score for t in result.trials)


@pytest.mark.parametrize("algorithm", ["random", "optuna"])
def test_same_seed_same_configs(ray_session, tmp_path, algorithm):
    def configs(sub, seed):
        r = _search(tmp_path / sub, {"logreg": LOGREG, "hist_gb": HIST}, algorithm=algorithm, seed=seed,
                    num_samples=3, max_concurrent=1)
        return sorted(str((t.family, sorted(t.params.items()))) for t in r.trials)

    first = configs("a", 5)
    assert configs("b", 5) == first
    if algorithm == "random":
        assert configs("c", 6) != first


def test_asha_stops_poor_mlp_trials_early_and_gpus_fall_back_to_cpu(ray_session, tmp_path, caplog):
    import ray

    assert ray.cluster_resources().get("GPU", 0) == 0  # this machine: tune.gpus_per_trial falls back to CPU
    caplog.set_level(logging.WARNING, logger="mlauto.tune.search")
    result = _search(tmp_path, {"mlp": MLP}, metric="log_loss", mode="min", num_samples=6, seed=2, gpus_per_trial=1,
                     scheduler="asha", scheduler_options={"grace_period": 2, "reduction_factor": 2, "max_t": 12})
    epochs = [int(t.metrics["epoch"]) for t in result.trials]
    assert len(epochs) == 6 and all(t.status == "ok" for t in result.trials)
    assert min(epochs) < 12, epochs  # at least one trial was stopped before max_epochs (patience is off)
    assert all("val_accuracy" in t.metrics and "train_seconds" in t.metrics for t in result.trials)
    assert len([r for r in caplog.records if "no GPU" in r.getMessage()]) == 1


def test_failing_params_are_retried_marked_and_the_search_goes_on(ray_session, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mlauto.tune.progress")
    # C=-1 makes LogisticRegression raise on fit: that grid point fails (after its retry), the others run.
    families = {"logreg": {"space": {"C": {"type": "choice", "values": [1.0, -1.0, 0.1]}}, "fixed": {}}}
    result = _search(tmp_path, families, algorithm="grid", max_failures=1)
    failed = [t for t in result.trials if t.status == "failed"]
    assert [t.params["C"] for t in failed] == [-1.0] and "C" in failed[0].error
    assert result.best.status == "ok" and result.best.params["C"] in (1.0, 0.1)
    # The progress callback counted the same, and logged plain lines (no carriage-return animation).
    assert result.progress["failed"] == 1 and result.progress["done"] == 2 and result.progress["running"] == 0
    assert result.progress["best"] == pytest.approx(result.best.score)
    lines = [r.getMessage() for r in caplog.records if r.name == "mlauto.tune.progress"]
    assert lines and lines[-1].startswith("trials 2/3 done, 0 running, 1 failed; best accuracy ")
    assert not any("\r" in line for line in lines)
    # Tune retried the failing trial once (max_failures=1) before marking it: two failures on record.
    state = json.loads(sorted(Path(tmp_path, "t").glob("experiment_state-*.json"))[-1].read_text())
    meta = {json.loads(t[0])["status"]: json.loads(t[1]) for t in state["trial_data"]}
    assert meta["ERROR"]["num_failures"] == 2 and meta["TERMINATED"]["num_failures"] == 0


RESUME_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, ray
    from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
    from mlauto.tune.search import SearchRun, run_search
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)); y = (X[:, 0] > 0).astype(int)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    fam = {"mlp": {"space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
                   "fixed": {"hidden": 8, "max_epochs": 80, "patience": 1000}}}
    r = run_search((X[:150], y[:150], X[150:], y[150:]), "binary",
                   TuneConf(num_samples=6, resume=True, max_concurrent=1), SearchConf(algorithm="random"),
                   SchedulerConf(), fam, SearchRun("resume-me", sys.argv[1], "accuracy", "max", 0))
    print("RESULT", len(r.trials), sum(t.status == "ok" for t in r.trials), r.resumed, r.progress["done"], flush=True)
    ray.shutdown()
""")


def _terminated(exp: Path) -> set[str]:
    """Trial ids the saved experiment state holds as finished (what a resume must not rerun)."""
    states = sorted(exp.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text())
    except ValueError:  # being written
        return set()
    trials = [json.loads(t[0]) for t in data["trial_data"]]
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path):
    """A search killed mid-way (SIGKILL) and rerun with resume keeps its finished trials."""
    script = tmp_path / "search.py"
    script.write_text(RESUME_SCRIPT)
    storage, exp = tmp_path / "results", tmp_path / "results" / "resume-me"
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(storage)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while len(_terminated(exp)) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    finished = _terminated(exp)
    assert 2 <= len(finished) < 6
    dirs = {p.name.split("_")[2]: p for p in exp.iterdir() if p.is_dir() and p.name.startswith("_trainable_")}
    before = {tid: (dirs[tid] / "result.json").read_bytes() for tid in finished}
    out = subprocess.run([sys.executable, str(script), str(storage)], env=env, capture_output=True, text=True,
                         timeout=300)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, out.stdout[-3000:] + out.stderr[-3000:]
    _, total, ok, resumed, done = line.split()
    assert resumed == "True" and int(total) == 6 and int(ok) == 6
    assert int(done) == 6  # the progress count includes the trials finished before the kill
    recorded = _terminated(exp)
    assert recorded >= finished and len(recorded) == 6  # finished trials did not come back as new trials
    for tid in finished:  # ... nor ran again in place: their results are byte for byte the same
        assert (dirs[tid] / "result.json").read_bytes() == before[tid], tid
    trial_dirs = [p for p in exp.iterdir() if p.is_dir() and p.name.startswith("_trainable_")]
    # Beside the 6 recorded trials, at most the one the kill interrupted after the last state save (one
    # trial at a time): never recorded, so the resumed search ran its slot again; it reported nothing.
    unrecorded = [p for p in trial_dirs if p.name.split("_")[2] not in recorded]
    assert len(trial_dirs) - len(unrecorded) == 6 and len(unrecorded) <= 1, [p.name for p in trial_dirs]
    for p in unrecorded:
        assert not (p / "result.json").exists() or not (p / "result.json").read_bytes().strip(), p.name


def test_a_time_budget_alone_runs_uncapped_and_cut_trials_are_stopped_not_failed(ray_session, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mlauto.tune")
    # an MLP that cannot finish in the budget (no ASHA: it reports once, at the end) beside quick logregs
    slow = {"space": {"lr": {"type": "choice", "values": [1e-3]}},
            "fixed": {"hidden": 8, "max_epochs": 10**6, "patience": 10**6, "batch_size": 8}}
    result = _search(tmp_path, {"logreg": LOGREG, "mlp": slow}, num_samples=None, time_budget_s=40, max_concurrent=2)
    statuses = {t.status for t in result.trials}
    assert "failed" not in statuses and "stopped" in statuses, [(t.family, t.status) for t in result.trials]
    assert all(t.family == "mlp" for t in result.trials if t.status == "stopped")
    assert any(t.status == "ok" for t in result.trials)
    # the progress callback agrees: stopped, not failed, and says so on its last line
    assert result.progress["failed"] == 0
    assert result.progress["stopped"] == sum(t.status == "stopped" for t in result.trials)
    assert result.progress["first_result_s"] is not None and result.progress["total"] == -1
    lines = [r.getMessage() for r in caplog.records if r.name == "mlauto.tune.progress"]
    assert "stopped by the budget" in lines[-1] and "/?" in lines[-1]
    assert any("until the 40s budget" in r.getMessage() for r in caplog.records)


def test_cv_data_scores_trials_by_fold_mean_and_std(ray_session, tmp_path):
    from mlauto.tune.cv import cv_data

    result = search(cv_data(_data(), "binary", 3, seed=0), {"logreg": LOGREG}, metric="accuracy", mode="max",
                    num_samples=2, algorithm="random", seed=0, storage_path=str(tmp_path), name="cv")
    assert all(t.status == "ok" and t.metrics["folds"] == 3 for t in result.trials)
    board = result.leaderboard()
    assert {"score", "score_std", "folds"} <= set(board.columns) and (board["score_std"] >= 0).all()


BOOSTERS = {"lightgbm": {"n_estimators": 400, "num_leaves": 8, "min_child_samples": 5, "verbose": -1, "n_jobs": 1},
            "xgboost": {"n_estimators": 400, "max_depth": 3, "n_jobs": 1}}


@pytest.mark.parametrize("family", sorted(BOOSTERS))
def test_boosting_trials_early_stop_and_report_at_asha_rungs(ray_session, tmp_path, family):
    conf = {"space": {"learning_rate": {"type": "loguniform", "low": 0.05, "high": 0.3}}, "fixed": BOOSTERS[family]}
    result = _search(tmp_path, {family: conf}, num_samples=3, scheduler="asha",
                     scheduler_options={"grace_period": 1, "reduction_factor": 3, "max_t": 100})
    assert all(t.status == "ok" for t in result.trials)
    # "epoch" is the rounds kept: early stopping on the trial's validation split ended every trial early
    assert all(0 < t.metrics["epoch"] < 400 for t in result.trials), [t.metrics for t in result.trials]
