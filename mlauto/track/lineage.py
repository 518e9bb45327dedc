"""What a run records beyond its scores, so it can be found, compared and reproduced later:
package versions, the git commit, Tune's per-iteration results, a model's per-epoch history, plots.
"""

from __future__ import annotations

import base64
import glob
import json
import logging
import os
import subprocess
import time
from typing import Any, Iterable

import numpy as np
from mlflow.entities import Metric

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
# The distributions whose versions decide what a run computes; logged with every parent run.
PACKAGES = ("mlauto", "ray", "scikit-learn", "torch", "mlflow", "alibi-detect", "numpy", "pandas", "optuna",
            "hydra-core")
# Tune's bookkeeping in a result row: not model metrics.
_BOOKKEEPING = {"timestamp", "done", "training_iteration", "pid", "iterations_since_restore", "time_since_restore",
                "checkpoint_dir_name", "trial_id", "date", "hostname", "node_ip", "config"}
MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch call


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``unknown`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = UNKNOWN
    return out


def git_commit() -> str:
    """HEAD of the repository mlauto is imported from, or ``unknown`` outside a git checkout."""
    import mlauto

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(mlauto.__file__)))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return (out.stdout.strip() or UNKNOWN) if out.returncode == 0 else UNKNOWN


def history_metrics(history: list[dict[str, Any]] | None, prefix: str = "epoch_") -> list[Metric]:
    """One metric per numeric field of each epoch (``epoch_train_loss``, ...), the epoch as its step."""
    now = int(time.time() * 1000)
    out = []
    for i, record in enumerate(history or []):
        step = int(record.get("epoch", i + 1))
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and np.isfinite(value):
                out.append(Metric(f"{prefix}{key}", float(value), now, step))
    return out


def experiment_dir(storage_path: str, trial_ids: Iterable[str]) -> str | None:
    """The folder Tune wrote this search's trials into (``<storage_path>/<name>``, or ``storage_path``
    itself), found by a trial id.

    None when it is not on this machine (e.g. remote storage).
    """
    if not storage_path or "://" in storage_path:
        return None
    root = glob.escape(os.path.abspath(storage_path))
    for trial_id in trial_ids:
        if trial_id:
            found = (glob.glob(os.path.join(root, "*", f"*_{glob.escape(trial_id)}_*", "result.json"))
                     or glob.glob(os.path.join(root, f"*_{glob.escape(trial_id)}_*", "result.json")))
            if found:
                return os.path.dirname(os.path.dirname(max(found, key=os.path.getmtime)))
    return None


def trial_iterations(directory: str | None, trial_id: str) -> list[dict[str, Any]]:
    """The result rows Tune wrote for one trial (``result.json`` in its folder under ``directory``), oldest first."""
    if not directory or not trial_id:
        return []
    paths = glob.glob(os.path.join(glob.escape(directory), f"*_{glob.escape(trial_id)}_*", "result.json"))
    if not paths:
        return []
    rows = []
    with open(max(paths, key=os.path.getmtime)) as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a row cut short by a killed trial
    return rows


def iteration_metrics(rows: list[dict[str, Any]]) -> list[Metric]:
    """Every numeric value of every reported iteration, the iteration as its step.

    A trial that reported once already has these values as its final metrics, so it gets none here.
    """
    if len(rows) < 2:
        return []
    now = int(time.time() * 1000)
    out = []
    for i, row in enumerate(rows):
        step = int(row.get("training_iteration") or i + 1)
        for key, value in row.items():
            if (key not in _BOOKKEEPING and isinstance(value, (int, float)) and not isinstance(value, bool)
                    and np.isfinite(value)):
                out.append(Metric(key, float(value), now, step))
    return out


def reported_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The per-epoch history a trial put in its last report (key ``history``), if it did."""
    for row in reversed(rows):
        history = row.get("history")
        if isinstance(history, list) and history:
            return [h for h in history if isinstance(h, dict)]
    return None


def batches(metrics: list[Metric], size: int = MAX_BATCH_METRICS) -> Iterable[list[Metric]]:
    for start in range(0, len(metrics), size):
        yield metrics[start:start + size]


def write_plots(directory: str, leaderboard: Any, metric: str, mode: str, history: list[dict[str, Any]] | None,
                curves: Any = None) -> list[str]:
    """PNG files for the run: time vs score with its Pareto front, the final model's loss per epoch,
    the sample-size learning curves. A plot that fails is skipped with a warning: it is a by-product."""
    from mlauto.report import plots

    os.makedirs(directory, exist_ok=True)
    written = []

    def save(name: str, build: Any) -> None:
        try:
            png = build()
        except Exception:  # noqa: BLE001 - see the docstring
            logger.warning("plot %s could not be drawn", name, exc_info=True)
            return
        path = os.path.join(directory, f"{name}.png")
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(png))
        written.append(path)

    if leaderboard is not None and len(leaderboard) and {"train_seconds", "score"} <= set(leaderboard.columns):
        ok = leaderboard[leaderboard["status"] == "ok"] if "status" in leaderboard else leaderboard
        if len(ok):
            save("time_vs_score", lambda: plots.time_vs_score(ok, plots.pareto_front(ok, mode), metric))
    if history:
        save("loss_per_epoch", lambda: _loss_plot(history))
    frame = getattr(curves, "frame", None)
    if frame is not None and len(frame):
        save("learning_curves", lambda: plots.learning_curves(frame, metric, mode))
    return written


def _loss_plot(history: list[dict[str, Any]]) -> str:
    from mlauto.report import plots

    fig, ax = plots._figure()
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for key in ("train_loss", "val_loss"):
        if all(key in h for h in history):
            ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    return plots.to_png(fig)
