"""Checks a resolved config once, on the way in, before any work starts.

Registry-backed names (families, sources, detectors) are passed in by the launcher, so this
package does not import any stage.
"""

from __future__ import annotations

from typing import Iterable

from mlauto.config.schema import STAGES, Config
from mlauto.errors import ConfigError

CLASSIFICATION_METRICS = {"accuracy": "max", "f1": "max", "roc_auc": "max", "log_loss": "min"}
SEARCH_ALGORITHMS = ("optuna", "random")
ACTIONS = ("run", "promote", "rollback")
PARAM_TYPES = ("loguniform", "uniform", "int", "logint", "choice")
MONITOR_CORRECTIONS = ("bonferroni", "fdr")  # as mlauto.monitor.detectors.CORRECTIONS


def metric_mode(metric: str) -> str:
    if metric not in CLASSIFICATION_METRICS:
        raise ConfigError("tune.metric", metric, sorted(CLASSIFICATION_METRICS))
    return CLASSIFICATION_METRICS[metric]


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


def validate(
    cfg: Config,
    *,
    families: Iterable[str],
    sources: Iterable[str],
    detectors: Iterable[str],
) -> Config:
    """Raise :class:`ConfigError` naming the first bad key; return ``cfg`` unchanged otherwise."""
    families, sources, detectors = sorted(families), sorted(sources), sorted(detectors)
    if cfg.action not in ACTIONS:
        raise ConfigError("action", cfg.action, ACTIONS)
    if cfg.action == "promote" and not cfg.version:
        raise ConfigError("version", cfg.version, "a registered version number", "action=promote needs version=N")
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
    if cfg.data.format not in (None, "csv", "parquet", "json"):
        raise ConfigError("data.format", cfg.data.format, ["null (infer)", "csv", "parquet", "json"])
    for key in ("test_size", "val_size"):
        value = getattr(cfg.prepare, key)
        if not 0.0 < value < 0.5:
            raise ConfigError(f"prepare.{key}", value, "a fraction in (0, 0.5)")
    if cfg.prepare.numeric_impute not in ("mean", "median"):
        raise ConfigError("prepare.numeric_impute", cfg.prepare.numeric_impute, ["mean", "median"])
    if "tune" in cfg.stages and not cfg.families:
        raise ConfigError("families", {}, families, "select model families, e.g. models=all")
    for name, fam in cfg.families.items():
        if name not in families:
            raise ConfigError("families", name, families, "unknown model family")
        _check_space(name, fam.space)
    if cfg.search.algorithm not in SEARCH_ALGORITHMS:
        raise ConfigError("search.algorithm", cfg.search.algorithm, SEARCH_ALGORITHMS)
    metric_mode(cfg.tune.metric)
    if cfg.tune.num_samples < 1:
        raise ConfigError("tune.num_samples", cfg.tune.num_samples, "an integer >= 1")
    if cfg.tune.cpus_per_trial <= 0:
        raise ConfigError("tune.cpus_per_trial", cfg.tune.cpus_per_trial, "a number > 0")
    if not 0 < cfg.serve.port < 65536:
        raise ConfigError("serve.port", cfg.serve.port, "1..65535")
    if cfg.monitor.detector not in detectors:
        raise ConfigError("monitor.detector", cfg.monitor.detector, detectors)
    if cfg.monitor.correction not in MONITOR_CORRECTIONS:
        raise ConfigError("monitor.correction", cfg.monitor.correction, MONITOR_CORRECTIONS)
    if not 0.0 < cfg.monitor.p_val < 1.0:
        raise ConfigError("monitor.p_val", cfg.monitor.p_val, "a probability in (0, 1)")
    if cfg.monitor.window < 10:
        raise ConfigError("monitor.window", cfg.monitor.window, "an integer >= 10")
    if cfg.monitor.min_accuracy is not None and not 0.0 < cfg.monitor.min_accuracy <= 1.0:
        raise ConfigError("monitor.min_accuracy", cfg.monitor.min_accuracy, "null or a fraction in (0, 1]")
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
    if cfg.serve.poll_s <= 0:
        raise ConfigError("serve.poll_s", cfg.serve.poll_s, "seconds > 0")
    if cfg.serve.max_body_bytes < 1024:
        raise ConfigError("serve.max_body_bytes", cfg.serve.max_body_bytes, "an integer >= 1024")
    if cfg.monitor.retrain_num_samples < 1:
        raise ConfigError("monitor.retrain_num_samples", cfg.monitor.retrain_num_samples, "an integer >= 1")
    address = cfg.cluster.address
    if address is not None and not (
        address == "auto" or address.startswith(("ray://", "http://", "https://")) or ":" in address
    ):
        raise ConfigError("cluster.address", address, "null (local), auto, host:port, ray://host:port, http://host:8265")
    return cfg
