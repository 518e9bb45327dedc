"""Reading the tracking store back: list an experiment's runs, compare runs side by side.

``mlauto action=runs`` and ``mlauto action=compare runs=[A,B]`` print these tables.
"""

from __future__ import annotations

import math
import time
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlauto.errors import MlautoError, RunNotFoundError

PARENT_TAG = "mlflow.parentRunId"
MIN_PREFIX = 6  # shortest run id prefix accepted for a lookup
MAX_CELL = 40  # characters of a value shown in a compare cell
# Tags that repeat what the params already show, or are MLflow's bookkeeping.
_SKIP_TAGS = {"mlauto.params_json", "mlflow.runName", "mlflow.user", "mlflow.source.name", "mlflow.source.type",
              "mlflow.source.git.commit", "mlflow.log-model.history"}


def _experiment_id(client: MlflowClient, uri: str, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise MlautoError(f"no experiment {experiment!r} in {uri}; experiments there: {', '.join(names) or 'none'} "
                          "(set name=... or tracking.experiment=..., and root or tracking.uri)")
    return exp.experiment_id


def find_run(uri: str, run_id: str, experiment: str | None = None) -> Run:
    """The run with this id; in ``experiment``, a unique prefix of at least ``MIN_PREFIX`` characters also works."""
    client = MlflowClient(uri)
    run_id = str(run_id).strip()
    try:
        return client.get_run(run_id)
    except MlflowException:
        pass
    if experiment and len(run_id) >= MIN_PREFIX:
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            matches = [r for r in _search(client, [exp.experiment_id]) if r.info.run_id.startswith(run_id)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RunNotFoundError(run_id, uri, f"run id prefix {run_id!r} matches {len(matches)} runs of "
                                       f"experiment {experiment!r}; give more characters")
    raise RunNotFoundError(run_id, uri)


def _search(client: MlflowClient, experiment_ids: list[str]) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=5000, order_by=["attributes.start_time DESC"],
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def _row(run: Run, metric: str | None) -> dict[str, Any]:
    data, info = run.data, run.info
    parent = data.tags.get(PARENT_TAG)
    metric = metric or data.params.get("metric")
    if parent:  # a trial: its validation score, its training time
        value = data.metrics.get(f"val_{metric}", data.metrics.get("score")) if metric else data.metrics.get("score")
        seconds = data.metrics.get("train_seconds")
    else:  # a training run: the final model's validation score, the search's wall time
        value = data.metrics.get(f"val_{metric}") if metric else None
        seconds = data.metrics.get("search_seconds")
    return {"run_id": info.run_id, "kind": "child" if parent else "parent", "parent_id": parent,
            "start": _when(info.start_time), "status": info.status,
            "family": data.params.get("family") or data.tags.get("mlauto.family", ""), "metric": metric,
            "value": value, "seconds": seconds, "name": info.run_name}


def list_runs(uri: str, experiment: str) -> list[dict[str, Any]]:
    """The experiment's runs: each training run (parent, newest first) followed by its trials (children,
    best first). A row: run_id, kind, parent_id, start, status, family, metric, value, seconds, name."""
    from mlauto.tasks import metric_mode

    client = MlflowClient(uri)
    runs = _search(client, [_experiment_id(client, uri, experiment)])
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    children: dict[str, list[Run]] = {}
    for r in runs:
        if PARENT_TAG in r.data.tags:
            children.setdefault(r.data.tags[PARENT_TAG], []).append(r)
    rows = []
    for parent in parents:
        metric = parent.data.params.get("metric")
        rows.append(_row(parent, metric))
        sign = -1.0 if metric and metric_mode(metric) == "max" else 1.0
        trials = [_row(c, metric) for c in children.pop(parent.info.run_id, [])]
        trials.sort(key=lambda t: sign * t["value"] if isinstance(t["value"], float) and not math.isnan(t["value"])
                    else math.inf)
        rows.extend(trials)
    for orphans in children.values():  # trials whose parent run was deleted
        rows.extend(_row(c, None) for c in orphans)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def format_runs(rows: list[dict[str, Any]]) -> str:
    """The listing as a fixed-width table; trials are indented under their training run."""
    header = f"{'run_id':<34} {'kind':<8} {'start':<19}  {'status':<9} {'family':<14} {'metric':<22} {'seconds':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        run_id = ("  " if r["kind"] == "child" else "") + r["run_id"]
        metric = f"{r['metric']}={_fmt(r['value'])}" if r["metric"] and r["value"] is not None else ""
        seconds = f"{r['seconds']:.2f}" if isinstance(r["seconds"], float) else ""
        lines.append(f"{run_id:<34} {r['kind']:<8} {r['start']:<19}  {r['status']:<9} {r['family'][:14]:<14} "
                     f"{metric[:22]:<22} {seconds:>9}")
    parents = sum(r["kind"] == "parent" for r in rows)
    lines.append(f"{parents} training run(s), {len(rows) - parents} trial run(s)")
    return "\n".join(lines)


def compare_runs(uri: str, run_ids: list[str], experiment: str | None = None) -> dict[str, Any]:
    """Info, params, metrics and mlauto tags of two or more runs, keyed alike; ``differs`` marks the
    keys whose values are not all equal (a key one run lacks differs)."""
    if len(run_ids) < 2:
        raise MlautoError(f"compare needs two or more run ids, got {list(run_ids)}")
    runs = [find_run(uri, r, experiment) for r in run_ids]
    sections: dict[str, list[dict[str, Any]]] = {
        "run": [{"kind": "child" if PARENT_TAG in r.data.tags else "parent", "status": r.info.status,
                 "start": _when(r.info.start_time), "parent": r.data.tags.get(PARENT_TAG, ""),
                 "experiment_id": r.info.experiment_id} for r in runs],
        "param": [dict(r.data.params) for r in runs],
        "metric": [dict(r.data.metrics) for r in runs],
        "tag": [{k: v for k, v in r.data.tags.items() if k not in _SKIP_TAGS and not k.startswith("mlflow.")}
                for r in runs],
    }
    rows = []
    for section, values in sections.items():
        for key in sorted(set().union(*values)):
            cells = [v.get(key) for v in values]
            rows.append({"section": section, "key": key, "values": cells, "differs": not _all_equal(cells)})
    return {"run_ids": [r.info.run_id for r in runs], "rows": rows}


def _all_equal(cells: list[Any]) -> bool:
    first = cells[0]
    for cell in cells[1:]:
        if isinstance(first, float) and isinstance(cell, float) and math.isnan(first) and math.isnan(cell):
            continue
        if cell != first:
            return False
    return True


def format_compare(comparison: dict[str, Any]) -> str:
    """Side by side, one row per key; ``*`` in the first column marks a difference."""
    ids = comparison["run_ids"]
    width = max(len(f"{r['section']} {r['key']}") for r in comparison["rows"]) if comparison["rows"] else 10
    width = min(max(width, 10), 48)
    head = f"  {'':<{width}}" + "".join(f" | {i[:MAX_CELL]:<{MAX_CELL}}" for i in ids)
    lines = [head, "-" * len(head)]
    for r in comparison["rows"]:
        label = f"{r['section']} {r['key']}"[:width]
        mark = "*" if r["differs"] else " "
        lines.append(f"{mark} {label:<{width}}" + "".join(f" | {_fmt(v):<{MAX_CELL}}" for v in r["values"]))
    n = sum(r["differs"] for r in comparison["rows"])
    lines.append(f"* marks the {n} of {len(comparison['rows'])} value(s) that differ")
    return "\n".join(lines)
