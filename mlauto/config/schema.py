"""Structured config: the schema Hydra checks every run against.

Unknown keys and wrong types fail inside Hydra before any work starts. Values whose allowed set
depends on registries (family names, sources, detectors) are checked in :mod:`mlauto.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

STAGES = ("ingest", "prepare", "tune", "serve", "monitor")


@dataclass
class DataConf:
    # "auto": "file" when path is set, else "sample".
    source: str = "auto"
    name: Optional[str] = "breast_cancer"
    path: Optional[str] = None
    format: Optional[str] = None
    target: str = "target"


@dataclass
class PrepareConf:
    test_size: float = 0.2
    val_size: float = 0.2
    stratify: bool = True
    numeric_impute: str = "median"
    max_categories: int = 50


@dataclass
class FamilyConf:
    # Search space: param -> {type: loguniform|uniform|int|logint|choice, low, high, values}
    space: Dict[str, Any] = field(default_factory=dict)
    # Fixed constructor arguments for every trial of this family.
    fixed: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchConf:
    algorithm: str = "optuna"


@dataclass
class TuneConf:
    num_samples: int = 16
    metric: str = "roc_auc"
    max_concurrent: int = 0  # 0: one trial per available CPU
    cpus_per_trial: float = 1.0
    time_budget_s: Optional[float] = None
    max_failures: int = 1


@dataclass
class TrackingConf:
    uri: Optional[str] = None  # None: sqlite:///<root>/mlflow.db
    experiment: Optional[str] = None  # None: the run name
    model_name: Optional[str] = None  # None: mlauto-<name>


@dataclass
class ServeConf:
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "mlauto"
    route_prefix: str = "/"
    num_replicas: int = 1
    replica_cpus: float = 0.0
    blocking: bool = True
    monitor_flush_s: float = 0.5
    monitor_buffer: int = 10000
    max_body_bytes: int = 8388608
    admin_token: Optional[str] = None  # None: generated at start and logged once
    protect_predict: bool = False  # also require the token on /predict and /feedback
    batch_max_size: int = 32  # concurrent /predict requests scored in one pass
    batch_wait_s: float = 0.002  # how long the first request of a batch waits for others
    poll_s: float = 2.0  # replicas check the champion alias this often and swap in place
    # Ray Serve autoscaling_config (min_replicas, max_replicas, target_ongoing_requests, ...);
    # None: a fixed num_replicas
    autoscaling: Optional[Dict[str, Any]] = None


@dataclass
class MonitorConf:
    actor_name: str = "mlauto-monitor"
    detector: str = "ks"
    p_val: float = 0.05
    window: int = 50
    retrain: bool = True
    cooldown_s: float = 60.0
    retrain_num_samples: int = 4
    promote_margin: float = 0.0
    perf_window: int = 200  # labels in the rolling accuracy
    min_accuracy: Optional[float] = None  # retrain when rolling accuracy falls below it; null: off
    persist: bool = True  # events and state under <root>/monitor/<actor_name>/
    correction: str = "bonferroni"  # per-feature detectors: bonferroni | fdr (Benjamini-Hochberg)
    options: Dict[str, Any] = field(default_factory=dict)  # detector options, e.g. mmd n_permutations


@dataclass
class ReplayConf:
    enabled: bool = False
    rows: int = 100
    shift: float = 3.0
    batch: int = 10
    timeout_s: float = 600.0


@dataclass
class ClusterConf:
    address: Optional[str] = None  # None: start a local Ray; "auto", "host:port", "ray://..." connect
    num_cpus: Optional[int] = None
    namespace: str = "mlauto"


@dataclass
class Config:
    # run: the stages; promote: make `version` the champion; rollback: restore the previous champion
    action: str = "run"
    version: Optional[str] = None
    name: str = "default"
    stages: List[str] = field(default_factory=lambda: list(STAGES))
    seed: int = 42
    root: str = "runs"
    data: DataConf = field(default_factory=DataConf)
    prepare: PrepareConf = field(default_factory=PrepareConf)
    families: Dict[str, FamilyConf] = field(default_factory=dict)
    search: SearchConf = field(default_factory=SearchConf)
    tune: TuneConf = field(default_factory=TuneConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    serve: ServeConf = field(default_factory=ServeConf)
    monitor: MonitorConf = field(default_factory=MonitorConf)
    replay: ReplayConf = field(default_factory=ReplayConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from a plain dict (e.g. the ``config.json`` logged with a run), checked by the schema."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), data))  # type: ignore[return-value]
