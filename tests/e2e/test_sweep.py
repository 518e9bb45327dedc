"""``mlauto -m``: each job trains and registers its own model and never serves; serving is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _mlauto(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "mlauto", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_sweep_trains_two_jobs_without_serving(tmp_path):
    done = _mlauto("-m", "search=optuna,random", "models=fast", "tune.num_samples=2", "tune.cv_folds=0",
                   "tune.portfolio=0", "tune.ensemble.method=none",
                   "name=sweep", f"root={tmp_path}", "cluster.num_cpus=2", "tune.sample_sizes.fractions=[]")
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = sorted((tmp_path / "multirun").glob("*/*/*/summary.json"))
    assert len(summaries) == 2, done.stderr[-3000:]
    names = set()
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["status"] == "ok" and summary["endpoint"] is None
        assert "serve" not in summary["stages"] and "monitor" not in summary["stages"]
        assert summary["model_version"] == "1"  # each job its own registered model
        names.add(summary["model_name"])
        assert (path.parent / "mlauto.log").exists()  # hydra.job.name=mlauto
    assert names == {"mlauto-sweep-search-optuna", "mlauto-sweep-search-random"}


def test_sweep_refuses_to_serve(tmp_path):
    done = _mlauto("-m", "search=optuna,random", "stages=[ingest,prepare,tune,serve]", f"root={tmp_path}",
                   timeout=120)
    assert done.returncode == 2
    assert "a sweep (-m) trains and registers one model per job and serves none" in done.stdout + done.stderr


def test_help_lists_actions_and_experiments():
    done = _mlauto("--help", timeout=120)
    assert done.returncode == 0
    from mlauto.config.schema import Action
    from mlauto.config.store import PACKAGE_DIR

    actions = ", ".join(a.value for a in Action)
    experiments = ", ".join(sorted(p.stem for p in (PACKAGE_DIR / "experiments").glob("*.yaml")))
    assert f"Actions (action=NAME, default run): {actions}" in done.stdout
    assert f"Experiments (experiment=NAME): {experiments}" in done.stdout
    assert "quickstart" in experiments and "monitor_report" in actions
    assert "mlauto -sc install=bash" in done.stdout
