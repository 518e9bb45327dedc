"""The report's figures: matplotlib (Agg) rendered to base64 PNG, so the HTML file needs nothing else."""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

MAX_LINES = 12  # learning curves drawn; more configs than this get unreadable
MAX_BARS = 20  # features / classes in a bar chart


def _figure(width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # no pyplot and no backend switch: the caller's (a notebook's) stays

    fig = Figure(figsize=(width, height), dpi=96, layout="constrained")
    return fig, fig.subplots()


def figure_grid(rows: int, cols: int, width: float = 6.4, height: float = 4.0, **kw: Any) -> Any:
    """A headless figure with a grid of axes (``fig.axes``, row by row)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96, layout="constrained")
    fig.subplots(rows, cols, squeeze=False, **kw)
    return fig


def to_png(fig: Any) -> str:
    """The figure as a base64 PNG (a data: URI's payload)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pareto_front(frame: pd.DataFrame, mode: str, time_col: str = "train_seconds",
                 score_col: str = "score") -> pd.DataFrame:
    """The non-dominated rows: no other row is at least as fast and strictly better, or faster and as good."""
    ok = frame.dropna(subset=[time_col, score_col])
    if ok.empty:
        return ok
    sign = 1.0 if mode == "max" else -1.0
    ordered = ok.assign(_gain=sign * ok[score_col]).sort_values([time_col, "_gain"], ascending=[True, False])
    keep, best = [], -math.inf
    for idx, gain in zip(ordered.index, ordered["_gain"]):
        if gain > best:
            keep.append(idx)
            best = gain
    return ok.loc[keep].sort_values(time_col)


def time_vs_score(points: pd.DataFrame, front: pd.DataFrame, metric: str) -> str:
    """Training time (log x) against the score, by family, with the Pareto front as a step line."""
    fig, ax = _figure()
    for family, group in points.groupby("family", sort=True) if "family" in points else [("all", points)]:
        ax.scatter(group["train_seconds"], group["score"], label=str(family), alpha=0.7, s=28)
    if not front.empty:
        ax.step(front["train_seconds"], front["score"], where="post", color="black", linewidth=1.2)
        ax.scatter(front["train_seconds"], front["score"], facecolors="none", edgecolors="black", s=90,
                   linewidths=1.5, label="Pareto front")
    if (points["train_seconds"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return to_png(fig)


def learning_curves(frame: pd.DataFrame, metric: str, mode: str) -> str:
    """Score against the number of training rows, one line per config (the best ``MAX_LINES`` configs)."""
    fig, ax = _figure()
    best = frame.groupby("config_id")["score"].max() if mode == "max" else -frame.groupby("config_id")["score"].min()
    for config_id in best.sort_values(ascending=False).index[:MAX_LINES]:
        rows = frame[frame["config_id"] == config_id].sort_values("n_train")
        family = rows["family"].iloc[0] if "family" in rows else ""
        ax.plot(rows["n_train"], rows["score"], marker="o", markersize=4, label=f"{config_id} ({family})")
    ax.set_xscale("log")
    ax.set_xlabel("training rows")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return to_png(fig)


def confusion(matrix: np.ndarray, classes: Sequence[Any]) -> str:
    """Counts per (true, predicted) class, each cell labelled with its count and its share of the true class."""
    n = len(classes)
    side = min(3.0 + 0.5 * n, 9.0)
    fig, ax = _figure(side + 1.0, side)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    return to_png(fig)


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Residual against prediction (is the error biased somewhere?) and the residuals' histogram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.8), dpi=96, layout="constrained")
    left, right = fig.subplots(1, 2)
    error = y_true - y_pred
    left.scatter(y_pred, error, s=12, alpha=0.5)
    left.axhline(0.0, color="black", linewidth=1)
    left.set_xlabel("predicted")
    left.set_ylabel("true - predicted")
    left.grid(True, alpha=0.3)
    right.hist(error, bins=min(40, max(5, len(error) // 10)), color="tab:blue", alpha=0.8)
    right.axvline(0.0, color="black", linewidth=1)
    right.set_xlabel("true - predicted")
    right.set_ylabel("rows")
    return to_png(fig)


def bars(labels: Sequence[str], values: Sequence[float], errors: Sequence[float] | None = None, *,
         xlabel: str) -> str:
    """Horizontal bars, largest on top (feature importance, target balance)."""
    labels, values = list(labels)[:MAX_BARS], np.asarray(values, dtype=float)[:MAX_BARS]
    fig, ax = _figure(6.4, 1.2 + 0.28 * len(labels))
    ypos = np.arange(len(labels))[::-1]
    xerr = None if errors is None else np.nan_to_num(np.asarray(errors, dtype=float)[:MAX_BARS])
    ax.barh(ypos, values, xerr=xerr, color="tab:blue", alpha=0.85, capsize=2)
    ax.set_yticks(ypos, [str(label)[:40] for label in labels])
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    return to_png(fig)


__all__ = ["bars", "confusion", "figure_grid", "learning_curves", "pareto_front", "residuals", "time_vs_score", "to_png"]
