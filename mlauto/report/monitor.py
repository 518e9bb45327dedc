"""The monitor report: a drift timeline drawn from the monitor's history, as one self-contained HTML page.

It takes plain data, the list ``Monitor.history()`` returns (this layer never imports the monitor):
entries ``{"step": rows_seen, "time", "model_version", "kind", "values"}`` where ``kind`` is

- ``window``: one drift test, values ``min_p_val``, ``threshold``, ``is_drift``, ``prediction_drift``;
- ``labels``: label feedback, values ``accuracy`` (or ``rmse``), ``cusum``, ``cusum_threshold``, ``labels``;
- ``retrain_started``, ``promotion``, ``rejection``, ``retrain_failed``, ``reference_updated``: decisions,
  values ``version``, ``challenger_score``, ``champion_score``, ``reason``.

The x axis is rows seen, so a timeline reads the same however fast the traffic came. Served by
``GET /report`` and written by ``mlauto action=monitor_report``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd

from mlauto import storage
from mlauto.report import plots
from mlauto.report.html import SCRIPT, STYLE, esc, facts, image, note, section, table

# Decision kinds, drawn as vertical markers across every panel: (colour, line style, legend label).
MARKERS: dict[str, tuple[str, str, str]] = {
    "retrain_started": ("tab:gray", "--", "retrain started"),
    "promotion": ("tab:green", "-", "promotion"),
    "rejection": ("tab:red", "-", "rejection"),
    "retrain_failed": ("black", ":", "retrain failed"),
    "reference_updated": ("tab:blue", ":", "reference updated"),
}
COUNTS = {"retrain_started": "retrains started", "promotion": "promotions", "rejection": "rejections",
          "retrain_failed": "retrains failed", "reference_updated": "reference updates"}
MAX_EVENT_ROWS = 200  # decisions listed in the table (newest first)
P_FLOOR = 1e-12  # p-values of 0 drawn at this height on the log axis


@dataclass
class Timeline:
    """The history split by kind, each a frame sorted by step."""

    windows: pd.DataFrame  # step, time, model_version, p_value, threshold, drift, prediction_drift
    labels: pd.DataFrame  # step, time, model_version, metric, value, cusum, cusum_threshold, labels
    events: pd.DataFrame  # step, time, kind, model_version, version, challenger_score, champion_score, reason


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _prediction_drift(value: Any) -> Any:
    """The prediction-drift verdict as given (bool) or read from the monitor's dict (``is_drift``)."""
    if isinstance(value, Mapping):
        return value.get("is_drift")
    return value


def timeline(history: Iterable[Mapping[str, Any]]) -> Timeline:
    """Split ``history`` into windows, label statistics and decisions; entries of unknown kind are decisions
    too (listed, not drawn), entries without a kind are skipped."""
    windows, labels, events = [], [], []
    for entry in history:
        kind, values = entry.get("kind"), entry.get("values") or {}
        if not kind:
            continue
        base = {"step": _number(entry.get("step")), "time": _number(entry.get("time")),
                "model_version": entry.get("model_version")}
        if kind == "window":
            windows.append({**base, "p_value": _number(values.get("min_p_val")),
                            "threshold": _number(values.get("threshold")), "drift": bool(values.get("is_drift")),
                            "prediction_drift": _prediction_drift(values.get("prediction_drift"))})
        elif kind == "labels":
            metric = "accuracy" if "accuracy" in values else "rmse" if "rmse" in values else None
            labels.append({**base, "metric": metric, "value": _number(values.get(metric)) if metric else math.nan,
                           "cusum": _number(values.get("cusum")),
                           "cusum_threshold": _number(values.get("cusum_threshold")), "labels": values.get("labels")})
        else:
            events.append({**base, "kind": str(kind), "version": values.get("version"),
                           "challenger_score": _number(values.get("challenger_score")),
                           "champion_score": _number(values.get("champion_score")), "reason": values.get("reason")})
    columns = (["step", "time", "model_version", "p_value", "threshold", "drift", "prediction_drift"],
               ["step", "time", "model_version", "metric", "value", "cusum", "cusum_threshold", "labels"],
               ["step", "time", "kind", "model_version", "version", "challenger_score", "champion_score", "reason"])
    frames = [pd.DataFrame(rows, columns=cols).sort_values(["step", "time"], kind="stable").reset_index(drop=True)
              for rows, cols in zip((windows, labels, events), columns)]
    return Timeline(*frames)


def _markers(ax: Any, events: pd.DataFrame, seen: set[str]) -> None:
    for row in events.itertuples(index=False):
        colour, style, label = MARKERS.get(row.kind, (None, None, None))
        if colour is None or math.isnan(row.step):
            continue
        ax.axvline(row.step, color=colour, linestyle=style, linewidth=1.3, alpha=0.85,
                   label=label if label not in seen else None)
        seen.add(label)


def figure(t: Timeline) -> str:
    """Three panels over rows seen: window p-values against the threshold, the rolling accuracy (or RMSE),
    the CUSUM statistic against its threshold; decisions as vertical lines on all three."""
    fig = plots.figure_grid(3, 1, width=10.0, height=8.4, sharex=True)
    pv, perf, cusum = fig.axes
    w = t.windows
    if not w.empty:
        p = w["p_value"].clip(lower=P_FLOOR)
        pv.plot(w["step"], p, marker="o", markersize=3, linewidth=1, color="tab:blue", label="min p-value")
        pv.step(w["step"], w["threshold"], where="post", color="tab:red", linestyle="--", linewidth=1.2,
                label="threshold")
        drift = w[w["drift"]]
        if not drift.empty:
            pv.scatter(drift["step"], p[drift.index], s=60, facecolors="none", edgecolors="tab:red", linewidths=1.5,
                       label="drift", zorder=3)
        pv.set_yscale("log")
    else:
        pv.text(0.5, 0.5, "no window tested yet", ha="center", va="center", transform=pv.transAxes, color="gray")
    pv.set_ylabel("p-value (log)")
    pv.set_title("Drift test per window")
    lab = t.labels.dropna(subset=["value"])
    metric = lab["metric"].iloc[-1] if not lab.empty else "accuracy"
    if not lab.empty:
        perf.plot(lab["step"], lab["value"], marker=".", color="tab:green", label=f"rolling {metric}")
    else:
        perf.text(0.5, 0.5, "no labels yet", ha="center", va="center", transform=perf.transAxes, color="gray")
    perf.set_ylabel(f"rolling {metric}")
    perf.set_title(f"Rolling {metric} on labelled rows")
    cs = t.labels.dropna(subset=["cusum"])
    if not cs.empty:
        cusum.plot(cs["step"], cs["cusum"], color="tab:purple", label="CUSUM")
        cusum.step(cs["step"], cs["cusum_threshold"], where="post", color="tab:red", linestyle="--", linewidth=1.2,
                   label="CUSUM threshold")
    else:
        cusum.text(0.5, 0.5, "no CUSUM statistic yet", ha="center", va="center", transform=cusum.transAxes,
                   color="gray")
    cusum.set_ylabel("CUSUM")
    cusum.set_title("Error-rate CUSUM")
    cusum.set_xlabel("rows seen")
    seen: set[str] = set()
    for ax in fig.axes:
        _markers(ax, t.events, seen)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return plots.to_png(fig)


def summary_rows(t: Timeline, status: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    w, lab, ev = t.windows, t.labels.dropna(subset=["value"]), t.events
    stamped = sorted((r.step, r.time, r.model_version) for df in (w, t.labels, ev)
                     for r in df[["step", "time", "model_version"]].itertuples(index=False)
                     if r.model_version is not None and not math.isnan(r.step))
    last_version = stamped[-1][2] if stamped else None
    counts = ev["kind"].value_counts()
    rows: list[tuple[str, Any]] = [
        ("model version", (status or {}).get("model_version") or last_version),
        ("rows seen", (status or {}).get("rows_seen") or (None if w.empty else int(w["step"].max()))),
        ("windows tested", len(w)),
        ("drift windows", int(w["drift"].sum()) if not w.empty else 0),
        ("last p-value", None if w.empty else w["p_value"].iloc[-1]),
        (f"last rolling {lab['metric'].iloc[-1]}" if not lab.empty else "last rolling accuracy",
         None if lab.empty else lab["value"].iloc[-1]),
        ("labels received", None if lab.empty else lab["labels"].iloc[-1]),
    ]
    rows += [(name, int(counts.get(k, 0))) for k, name in COUNTS.items() if k in counts or k in ("promotion", "rejection")]
    return rows


def _when(seconds: float) -> str:
    return "" if math.isnan(seconds) else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def render(history: Iterable[Mapping[str, Any]], title: str = "Monitor report",
           status: Mapping[str, Any] | None = None) -> str:
    """The monitor report as an HTML document (every figure inline); ``status``: the monitor's current
    status, for the model version and rows seen when the history is empty or trimmed."""
    t = timeline(history)
    parts = [section("summary", "Summary", facts(summary_rows(t, status)))]
    if t.windows.empty and t.labels.empty and t.events.empty:
        parts.append(section("timeline", "Drift timeline", note("Skipped: the monitor has no history yet "
                                                                "(no window tested, no labels, no decision).")))
    else:
        body = ('<p class="muted">Over rows seen: the smallest per-feature p-value of each window against the '
                "drift threshold (circled: drift), the rolling score on labelled rows, and the error-rate CUSUM "
                "against its threshold. Vertical lines: retrains started (grey dashed), promotions (green), "
                "rejections (red), failed retrains (black dotted), reference updates (blue dotted).</p>")
        parts.append(section("timeline", "Drift timeline", body + image(figure(t), "drift timeline")))
    if t.events.empty:
        parts.append(section("decisions", "Retrain decisions", note("Skipped: no retrain decision yet.")))
    else:
        shown = t.events.iloc[::-1].assign(time=lambda f: f["time"].map(_when))
        parts.append(section("decisions", "Retrain decisions", table(shown, MAX_EVENT_ROWS)))
    if not t.windows.empty:
        recent = t.windows.iloc[::-1].assign(time=lambda f: f["time"].map(_when))
        parts.append(section("windows", "Recent windows", table(recent, 50)))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f'<h1>{esc(title)}</h1><p class="muted">generated {esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}</p>\n'
            + "\n".join(parts) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def write(path: str, history: Iterable[Mapping[str, Any]], title: str = "Monitor report",
          status: Mapping[str, Any] | None = None) -> str:
    """Write :func:`render`'s page to ``path`` (any filesystem, atomically) and return the path."""
    storage.write_text(path, render(history, title, status))
    return path


__all__ = ["MARKERS", "Timeline", "render", "timeline", "write"]
