"""One self-contained HTML file per experiment: every figure is an inline base64 PNG, no external files.

Each section is built from its own optional input; a missing input gives a short note instead of the
section, never an error. A small inline script marks each figure ``data-rendered="1"`` once the browser
has decoded it, so a headless browser can check that the report really renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import html
import json
import logging
import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from mlauto import storage
from mlauto.tasks import metric_mode
from mlauto.report import plots

logger = logging.getLogger(__name__)

MAX_TRIAL_ROWS = 100  # trials listed in the leaderboard table (best first)
MAX_PROFILE_ROWS = 200  # columns listed in the data profile table

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{color:#666;font-style:italic}.muted{color:#666;font-size:.9em}
img.plot{max-width:100%;height:auto;display:block;margin:.6em 0}
nav a{margin-right:1em}.scroll{overflow-x:auto;max-width:100%}
"""

# Marks every figure once decoded (naturalWidth > 0), so tests and users can tell a broken image.
SCRIPT = """
document.querySelectorAll('img.plot').forEach(function (img) {
  function mark() { img.setAttribute('data-rendered', img.naturalWidth > 0 ? '1' : '0'); }
  if (img.complete) { mark(); } else { img.addEventListener('load', mark); img.addEventListener('error', mark); }
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A readable cell: 4 significant digits for floats, nested dicts flattened, everything escaped."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else esc(f"{value:.4g}")
    if isinstance(value, dict):
        return ", ".join(f"{esc(k)}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return esc(", ".join(str(v) for v in value))
    return esc(value)


def image(png: str, alt: str) -> str:
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{png}">'


def table(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    shown = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in shown.itertuples(index=False, name=None))
    more = (f'<p class="muted">{len(frame) - len(shown)} more row(s) not shown.</p>'
            if len(frame) > len(shown) else "")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'


def facts(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{fmt(v)}</td></tr>" for k, v in rows if v is not None)
    return f"<table><tbody>{body}</tbody></table>"


def section(key: str, title: str, body: str) -> str:
    return f'<section id="{esc(key)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def note(text: str) -> str:
    return f'<p class="note" data-skipped="1">{esc(text)}</p>'


def _best_row(leaderboard: pd.DataFrame | None, mode: str) -> pd.Series | None:
    if leaderboard is None or leaderboard.empty or "score" not in leaderboard:
        return None
    ok = leaderboard.dropna(subset=["score"])
    if "status" in ok:
        ok = ok[ok["status"] == "ok"]
    if ok.empty:
        return None
    return ok.loc[ok["score"].idxmax() if mode == "max" else ok["score"].idxmin()]


def summary_section(*, task: str, metric: str, mode: str, leaderboard: pd.DataFrame | None,
                    summary: dict[str, Any] | None) -> str:
    summary = dict(summary or {})
    best = _best_row(leaderboard, mode)
    val = summary.pop("val_metrics", None) or {}
    test = summary.pop("test_metrics", None) or {}
    trials = None
    if leaderboard is not None and not leaderboard.empty:
        failed = int((leaderboard["status"] != "ok").sum()) if "status" in leaderboard else 0
        trials = f"{len(leaderboard)} ({failed} failed)"
    rows: list[tuple[str, Any]] = [
        ("task", task), ("metric", f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)"),
        ("best family", summary.pop("best_family", None) or (None if best is None else best.get("family"))),
        (f"validation {metric}", val.get(metric, None if best is None else best.get("score"))),
        (f"test {metric}", test.get(metric)),
        ("trials", trials),
    ]
    rows += [(str(k).replace("_", " "), v if not isinstance(v, (dict, list)) or len(json.dumps(v, default=str)) < 400
              else json.dumps(v, default=str)[:400] + " ...") for k, v in summary.items()]
    body = facts(rows)
    if val or test:
        names = list(dict.fromkeys([*val, *test]))
        body += "<h3>Scores of the final model</h3>" + table(pd.DataFrame(
            {"metric": names, "validation": [val.get(n, math.nan) for n in names],
             "test": [test.get(n, math.nan) for n in names]}))
    return section("summary", "Summary", body)


def _profile_summary(entry: dict[str, Any]) -> str:
    if entry.get("type") == "numeric" and "mean" in entry:
        return f"min {entry['min']:.4g} · mean {entry['mean']:.4g} · max {entry['max']:.4g}"
    if entry.get("top"):
        return "top: " + ", ".join(f"{k} ({v})" for k, v in list(entry["top"].items())[:5])
    if entry.get("min") is not None:
        return f"{entry.get('min')} .. {entry.get('max')}"
    return ""


def profile_section(profile: dict[str, Any] | str | None, task: str = "binary") -> str:
    title = "Data profile"
    if isinstance(profile, (str, os.PathLike)):
        loaded = storage.read_json(str(profile))
        if loaded is None:
            return section("profile", title, note(f"Skipped: the profile file {profile} does not exist."))
        profile = loaded
    if not profile or not profile.get("features"):
        return section("profile", title, note("Skipped: no data profile was given."))
    rows = []
    for col, e in profile["features"].items():
        assoc = e.get("target_association") or {}
        rows.append({"column": col, "type": e.get("type"), "missing %": e.get("missing_pct"),
                     "distinct": ("~" if e.get("distinct_approximate") else "") + str(e.get("distinct", "")),
                     "summary": _profile_summary(e), "target association": assoc.get("value", math.nan)})
    body = (f'<p>{profile.get("rows")} rows × {profile.get("columns")} columns; target '
            f'<b>{esc(profile.get("target"))}</b>. Statistics: {esc(profile.get("approximate", "exact"))}.</p>')
    body += table(pd.DataFrame(rows), MAX_PROFILE_ROWS)
    balance = profile.get("target_balance") or {}
    if balance and task != "regression":  # a numeric target's "balance" is one row per value: not useful
        counts = profile.get("target_counts") or {}
        top = sorted(balance.items(), key=lambda kv: -kv[1])
        body += "<h3>Target balance</h3>" + table(pd.DataFrame(
            {"class": [k for k, _ in top], "rows": [counts.get(k, "") for k, _ in top],
             "share": [v for _, v in top]}), plots.MAX_BARS)
        if len(top) > 1:
            body += image(plots.bars([k for k, _ in top], [v for _, v in top], xlabel="share of rows"),
                          "target balance")
    return section("profile", title, body)


def family_best(leaderboard: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Best trial per family, best family first (used when the caller has no family board)."""
    ok = leaderboard.dropna(subset=["score"])
    if "status" in ok:
        ok = ok[ok["status"] == "ok"]
    ok = ok.sort_values("score", ascending=mode == "min")
    cols = [c for c in ("family", "score", "train_seconds", "infer_ms_per_row", "trial_id") if c in ok]
    return ok.drop_duplicates("family")[cols].reset_index(drop=True)


def leaderboard_section(leaderboard: pd.DataFrame | None, family_board: pd.DataFrame | None, mode: str) -> str:
    title = "Leaderboard"
    if leaderboard is None or leaderboard.empty:
        body = note("Skipped: no trials were given.")
        if family_board is not None and not family_board.empty:
            body += "<h3>Best per family</h3>" + table(family_board)
        return section("leaderboard", title, body)
    if family_board is None and "family" in leaderboard and "score" in leaderboard:
        family_board = family_best(leaderboard, mode)
    body = ""
    if family_board is not None and not family_board.empty:
        body += "<h3>Best per family</h3>" + table(family_board)
    ordered = leaderboard
    if "score" in leaderboard:
        ordered = leaderboard.sort_values("score", ascending=mode == "min", na_position="last")
    body += f"<h3>Trials ({len(leaderboard)})</h3>" + table(ordered, MAX_TRIAL_ROWS)
    return section("leaderboard", title, body)


def _curves_parts(curves: Any, pareto: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None,
                                                                     dict[str, Any] | None]:
    """(frame, pareto, fastest_within) from a ``Curves`` object or a plain DataFrame."""
    if curves is None:
        return None, pareto, None
    if isinstance(curves, pd.DataFrame):
        return curves, pareto, None
    frame = getattr(curves, "frame", None)
    if pareto is None:
        pareto = getattr(curves, "pareto", None)
    return frame, pareto, getattr(curves, "fastest_within", None)


def pareto_section(frame: pd.DataFrame | None, leaderboard: pd.DataFrame | None, pareto: pd.DataFrame | None,
                   fastest: dict[str, Any] | None, metric: str, mode: str) -> str:
    title = "Training time vs score"
    points, source = frame, "sample-size runs"
    if points is None or points.empty:
        points, source = leaderboard, "trials"
    needed = {"train_seconds", "score"}
    if points is None or points.empty or not needed <= set(points.columns):
        return section("time-vs-score", title, note("Skipped: no runs with training time and score were given."))
    points = points.dropna(subset=list(needed))
    if "status" in points:
        points = points[points["status"] == "ok"]
    if points.empty:
        return section("time-vs-score", title, note("Skipped: no run finished with a training time and a score."))
    if pareto is None or pareto.empty:
        pareto = plots.pareto_front(points, mode)
    body = (f'<p class="muted">Each point is one of the {source}; circled points form the Pareto front '
            "(no other run is both faster and better).</p>")
    body += image(plots.time_vs_score(points, pareto, metric), "training time vs score")
    cols = [c for c in ("config_id", "trial_id", "family", "fraction", "n_train", "train_seconds", "score", "params")
            if c in pareto]
    body += "<h3>Pareto front</h3>" + table(pareto[cols].sort_values("train_seconds"))
    if fastest:
        body += ("<h3>Fastest within tolerance</h3>" + facts(list(fastest.items())))
    return section("time-vs-score", title, body)


def curves_section(frame: pd.DataFrame | None, metric: str, mode: str) -> str:
    title = "Learning curves"
    needed = {"config_id", "n_train", "score"}
    if frame is None or frame.empty or not needed <= set(frame.columns):
        return section("learning-curves", title, note("Skipped: no sample-size runs (learning curves) were given."))
    frame = frame.dropna(subset=["score"])
    body = ('<p class="muted">Validation score against the number of training rows, per config: a curve still '
            "rising at the right end would gain from more data.</p>")
    body += image(plots.learning_curves(frame, metric, mode), "learning curves")
    return section("learning-curves", title, body)


def _predictions(y_pred: Any, proba: Any, classes: Any) -> np.ndarray | None:
    if y_pred is not None:
        return np.asarray(y_pred)
    if proba is not None and classes is not None:
        return np.asarray(classes)[np.argmax(np.asarray(proba), axis=1)]
    return None


def errors_section(task: str, y_true: Any, y_pred: Any, proba: Any, classes: Any) -> str:
    if task == "regression":
        key, title = "residuals", "Residuals (test split)"
        if y_true is None or y_pred is None:
            return section(key, title, note("Skipped: no test targets and predictions were given."))
        truth, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
        error = truth - pred
        body = facts([("rows", len(error)), ("mean residual", float(error.mean())),
                      ("rmse", float(np.sqrt((error ** 2).mean()))), ("mae", float(np.abs(error).mean()))])
        body += image(plots.residuals(truth, pred), "residuals")
        return section(key, title, body)
    key, title = "confusion-matrix", "Confusion matrix (test split)"
    pred = _predictions(y_pred, proba, classes)
    if y_true is None or pred is None:
        return section(key, title, note("Skipped: no test targets and predictions were given."))
    truth = np.asarray(y_true)
    labels = list(classes) if classes is not None else sorted(set(truth.tolist()) | set(pred.tolist()), key=str)
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(truth, pred, labels=labels)
    per_class = pd.DataFrame({"class": [str(c) for c in labels], "rows": matrix.sum(axis=1),
                              "recall": np.divide(np.diag(matrix), matrix.sum(axis=1),
                                                  out=np.full(len(labels), np.nan), where=matrix.sum(axis=1) > 0),
                              "precision": np.divide(np.diag(matrix), matrix.sum(axis=0),
                                                     out=np.full(len(labels), np.nan), where=matrix.sum(axis=0) > 0)})
    body = (f'<p>{len(truth)} rows, accuracy {np.trace(matrix) / max(matrix.sum(), 1):.4f}.</p>'
            + image(plots.confusion(matrix, labels), "confusion matrix") + table(per_class))
    return section(key, title, body)


def binary_section(y_true: Any, proba: Any, classes: Any) -> str:
    """ROC, precision-recall and calibration of the positive class (binary tasks only)."""
    key, title = "binary-curves", "ROC, precision-recall and calibration (test split)"
    if y_true is None or proba is None or classes is None:
        return section(key, title, note("Skipped: no test targets and probabilities were given."))
    from mlauto.report import binary

    png, intro, calibration, numbers = binary.section_body(y_true, proba, classes)
    body = (f'<p class="muted">{esc(intro)}</p>' + facts(list(numbers.items()))
            + image(png, "ROC, precision-recall and calibration curves")
            + "<h3>Calibration bins</h3>" + table(calibration))
    return section(key, title, body)


def importance_section(importance: pd.DataFrame | None, metric: str) -> str:
    title = "Feature importance"
    if importance is None or importance.empty:
        return section("importance", title, note("Skipped: no feature importance was given."))
    frame = importance.sort_values("importance", ascending=False, kind="stable")
    errors = frame["std"] if "std" in frame else None
    body = (f'<p class="muted">Permutation importance on the validation split: how much {esc(metric)} worsens '
            "when one input column is shuffled.</p>")
    body += image(plots.bars(frame["feature"].astype(str), frame["importance"], errors,
                             xlabel=f"drop in {metric}"), "feature importance")
    body += table(frame.reset_index(drop=True), 50)
    return section("importance", title, body)


def _guarded(key: str, title: str, build: Callable[[], str]) -> str:
    """A section whose figure fails gives a note, so one bad input never costs the whole report."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - the report is a by-product; the note names the error
        logger.warning("report section %s failed: %s", key, exc, exc_info=True)
        return section(key, title, f'<p class="note" data-failed="1">Failed: {esc(type(exc).__name__)}: '
                                   f"{esc(exc)}</p>")


@dataclass
class ReportContent:
    """What the experiment report shows. ``curves``: a ``Curves`` (``.frame``, ``.pareto``,
    ``.fastest_within``) or its frame; ``profile``: the profile dict or the JSON file ``mlauto.data``
    wrote; ``y_true``/``y_pred``/``proba``/``classes``: the test split's targets and predictions;
    ``importance``: ``feature_importance``'s frame."""

    title: str
    task: str
    metric: str
    leaderboard: pd.DataFrame | None
    family_board: pd.DataFrame | None = None
    curves: Any = None
    pareto: pd.DataFrame | None = None
    profile: dict[str, Any] | str | None = None
    y_true: Any = None
    y_pred: Any = None
    proba: Any = None
    classes: Any = None
    importance: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None


def write_report(path: str, content: ReportContent) -> str:
    """Write the experiment report to ``path`` (folders created) and return the path."""
    c = content
    title, task, metric, leaderboard, summary = c.title, c.task, c.metric, c.leaderboard, c.summary
    family_board, curves, pareto, profile, importance = c.family_board, c.curves, c.pareto, c.profile, c.importance
    y_true, y_pred, proba, classes = c.y_true, c.y_pred, c.proba, c.classes
    mode = metric_mode(metric)
    frame, pareto, fastest = _curves_parts(curves, pareto)
    errors_key = "residuals" if task == "regression" else "confusion-matrix"
    parts = [
        _guarded("summary", "Summary", lambda: summary_section(task=task, metric=metric, mode=mode,
                                                              leaderboard=leaderboard, summary=summary)),
        _guarded("profile", "Data profile", lambda: profile_section(profile, task)),
        _guarded("leaderboard", "Leaderboard", lambda: leaderboard_section(leaderboard, family_board, mode)),
        _guarded("time-vs-score", "Training time vs score",
                 lambda: pareto_section(frame, leaderboard, pareto, fastest, metric, mode)),
        _guarded("learning-curves", "Learning curves", lambda: curves_section(frame, metric, mode)),
        _guarded(errors_key, errors_key.replace("-", " ").capitalize(),
                 lambda: errors_section(task, y_true, y_pred, proba, classes)),
        _guarded("importance", "Feature importance", lambda: importance_section(importance, metric)),
    ]
    if task == "binary":
        parts.insert(-1, _guarded("binary-curves", "ROC, precision-recall and calibration",
                                  lambda: binary_section(y_true, proba, classes)))
    nav = "".join(f'<a href="#{k}">{esc(t)}</a>' for k, t in (
        ("summary", "Summary"), ("profile", "Data"), ("leaderboard", "Leaderboard"), ("time-vs-score", "Time vs score"),
        ("learning-curves", "Learning curves"), (errors_key, errors_key.replace("-", " ").capitalize()),
        *([("binary-curves", "ROC / PR / calibration")] if task == "binary" else []), ("importance", "Importance")))
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f'<h1>{esc(title)}</h1><p class="muted">{esc(task)} · {esc(metric)} · generated '
        f'{esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}</p><nav>{nav}</nav>\n'
        + "\n".join(parts) + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
    storage.write_text(path, document)  # atomic; any filesystem
    logger.info("report written to %s", path)
    return path


__all__ = ["write_report"]
