"""Structured config: the schema Hydra checks every run against, and the one owner of every default.

Unknown keys, wrong types and a value outside a fixed choice (the Enums below) fail inside Hydra before
any work starts. Registry names (families, sources, detectors, transforms, selectors) stay strings: each
stage package checks them against its registry, with its ranges and cross-field rules, in its
``checks.py`` (see :mod:`mlauto.config.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Type, TypeVar

STAGES = ("ingest", "prepare", "tune", "serve", "monitor")


class Choice(str, Enum):
    """A fixed choice: a ``str`` whose ``str()`` and ``format()`` are its value, so ``== "optuna"``,
    f-strings, ``json.dumps`` and MLflow params see plain text. Member names equal their values, so
    OmegaConf (which reads an Enum by name) takes the value as written in YAML or on the command line.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Action(Choice):
    """What the command does; see :class:`Config`."""

    run = "run"
    promote = "promote"
    rollback = "rollback"
    events = "events"
    serve_config = "serve_config"
    snapshots = "snapshots"
    schedule = "schedule"
    schedule_status = "schedule_status"
    schedule_stop = "schedule_stop"
    runs = "runs"
    compare = "compare"
    reproduce = "reproduce"
    predict = "predict"
    monitor_report = "monitor_report"


class SearchAlgorithm(Choice):
    optuna = "optuna"
    random = "random"
    grid = "grid"
    bayesopt = "bayesopt"


class SchedulerName(Choice):
    fifo = "fifo"
    asha = "asha"


class SplitMethod(Choice):
    auto = "auto"
    random = "random"
    stratified = "stratified"
    group = "group"
    time = "time"


class SchemaCheck(Choice):
    warn = "warn"
    fail = "fail"
    off = "off"


class OnInvalid(Choice):
    quarantine = "quarantine"
    impute = "impute"


class ColumnType(Choice):
    numeric = "numeric"
    categorical = "categorical"
    datetime = "datetime"


class EnsembleMethod(Choice):
    none = "none"
    soft_vote = "soft_vote"
    stacking = "stacking"
    caruana = "caruana"  # greedy ensemble selection on out-of-fold outputs (mlauto.tune.caruana)


class RefitMode(Choice):
    """Which rows the served model is refit on after the search picked its config."""

    train = "train"  # the training split only: the model the leaderboard scored
    train_val = "train_val"  # training + validation; the test split stays unseen (an honest test score)
    all = "all"  # every row; the test score comes from the train_val refit, a different model


class Correction(Choice):
    bonferroni = "bonferroni"
    fdr = "fdr"


class Ingress(Choice):
    auto = "auto"
    haproxy = "haproxy"
    proxy = "proxy"


class PredictFormat(Choice):
    parquet = "parquet"
    csv = "csv"


class ParamType(Choice):
    """``families.<name>.space.<param>.type`` (the space is a free mapping: checked by mlauto.models.checks)."""

    loguniform = "loguniform"
    uniform = "uniform"
    int = "int"
    logint = "logint"
    choice = "choice"


@dataclass
class DataConf:
    # "auto": "sql" when url is set, "file" when path is set, else "sample".
    source: str = "auto"
    name: Optional[str] = "breast_cancer"
    path: Optional[str] = None
    format: Optional[str] = None
    target: str = "target"
    # sql source: an SQLAlchemy URL and exactly one of query / table
    url: Optional[str] = None
    query: Optional[str] = None
    table: Optional[str] = None
    shard_keys: Optional[List[str]] = None  # columns to hash so read_sql reads in parallel


@dataclass
class IngestConf:
    # cron expression ("*/5 * * * *"; a 6th field is seconds: "* * * * * */10"); null: no schedule
    schedule: Optional[str] = None
    timezone: str = "UTC"  # the cron fields are read in this time zone
    actor_name: str = "mlauto-ingest"
    keep_snapshots: Optional[int] = None  # keep the newest N snapshots (never the one in use); null: all
    retrain_on_new_snapshot: bool = False  # ask the monitor actor to retrain when the data changed


@dataclass
class ColumnRule:
    """What is valid in one column and what to do with an invalid value."""

    type: Optional[ColumnType] = None  # None: inferred
    range: Optional[List[Any]] = None  # [low, high] numbers, inclusive; a null end is open
    categories: Optional[List[Any]] = None  # the allowed values; None: any
    on_invalid: Optional[OnInvalid] = None  # None: prepare.clean.on_invalid
    fill: Any = None  # with impute: the value put in place of an invalid one (None: missing, imputed later)


@dataclass
class CleanConf:
    """Cleaning rules (:mod:`mlauto.data.clean`)."""

    dedupe: bool = True  # exact duplicate rows are quarantined
    numeric_threshold: float = 0.95  # a text column this numeric is numeric; its other values are invalid
    # quarantine | impute (the value becomes missing and is imputed on train stats)
    on_invalid: OnInvalid = OnInvalid.quarantine
    required: List[str] = field(default_factory=list)  # rows missing one of these columns are quarantined
    # column -> a ColumnRule's keys (a free mapping, so that +prepare.clean.columns.age.range=[0,120] works
    # on the command line; mlauto.data.checks checks each against ColumnRule)
    columns: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PrepareConf:
    test_size: float = 0.2
    val_size: float = 0.2
    stratify: bool = True
    numeric_impute: str = "median"
    max_categories: int = 50
    # auto: stratified on the target (random if stratify=false) | random | stratified | group | time
    split: SplitMethod = SplitMethod.auto
    group_column: Optional[str] = None  # split=group: no group on both sides
    time_column: Optional[str] = None  # split=time: train on the past, test on the future
    clean: CleanConf = field(default_factory=CleanConf)
    schema_check: SchemaCheck = SchemaCheck.warn  # a snapshot that differs from the saved schema: warn | fail | off
    profile_sample_rows: int = 10000  # rows behind the approximate quantiles and target association


@dataclass
class FeaturesConf:
    # Transform steps, in order: {name: impute|scale|onehot|ordinal|target|datetime|log|clip|function,
    # columns: numeric|categorical|datetime|all|[names], exclude, min_unique, ...options}.
    # None: impute numerics (prepare.numeric_impute), one-hot the rest (prepare.max_categories).
    steps: Optional[List[Dict[str, Any]]] = None
    # Feature selectors, in order, after the steps: {method: variance|mutual_info|model, k, threshold, ...}
    selection: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class FamilyConf:
    # Search space: param -> {type: loguniform|uniform|int|logint|choice, low, high, values}
    space: Dict[str, Any] = field(default_factory=dict)
    # Fixed constructor arguments for every trial of this family.
    fixed: Dict[str, Any] = field(default_factory=dict)
    # true: searched only where models.include names it (models=all composes it, the search leaves it out)
    opt_in: bool = False


@dataclass
class ModelsConf:
    # the families to search, by name (e.g. [logreg,hist_gb]): a subset of those `models=` composed
    # (models=all: every model/<name>.yaml); null: all of them but the opt-in ones (model/xgboost.yaml)
    include: Optional[List[str]] = None


@dataclass
class SearchConf:
    # optuna (TPE) | random (Optuna's random sampler) | grid | bayesopt (a GP per family); see README "Search"
    algorithm: SearchAlgorithm = SearchAlgorithm.optuna
    grid_points_per_param: int = 3  # grid: values per numeric range (geometric for log types)
    max_grid_size: int = 1000  # grid: more points than this is an error


@dataclass
class SchedulerConf:
    # fifo: every trial runs to its end | asha: stop trials whose epoch scores trail (iterative families)
    name: SchedulerName = SchedulerName.fifo
    grace_period: int = 5  # asha: epochs before a trial can be stopped (>= 2 keeps one-shot families out)
    reduction_factor: float = 3.0  # asha: keep the best 1/reduction_factor at each rung
    max_t: int = 100  # asha: the most epochs any trial gets


@dataclass
class EnsembleConf:
    # none | soft_vote | stacking | caruana. caruana (default): greedy selection over the k candidates (each
    # family's best config, then the next best trials) on out-of-fold outputs, kept when it beats the best
    # single candidate's out-of-fold log loss (regression: the tuned metric) by more than min_gain
    # (mlauto/tune/caruana.py says why not accuracy). soft_vote | stacking: the top-k trials, kept when they
    # beat the best on validation in the tuned metric. none when one model matters more (a kept ensemble
    # serves several models per request; a retrain can warm-start from a single config).
    method: EnsembleMethod = EnsembleMethod.caruana
    k: int = 8  # candidates; 8 covers every family of models=all (bench/selection.py measured that pool)
    # The gain the ensemble must exceed to replace the best single config, in the units of what decides
    # (see method): 0 asks for a strict win, a positive value for a margin worth the inference cost.
    min_gain: float = 0.0


@dataclass
class SampleSizeConf:
    # Retrain the top_k configs on these fractions of the training rows (Ray tasks); []: off
    fractions: List[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    top_k: int = 3
    tolerance: float = 0.01  # fastest_within: absolute, in the metric's units


DEFAULT_TRIALS = 16  # tune.num_samples when it is null and no time budget is set


@dataclass
class TuneConf:
    # Trials to run. null: 16, or with time_budget_s set, as many as fit in the budget (no cap)
    num_samples: Optional[int] = None
    # auto: roc_auc (binary), accuracy (multiclass), rmse (regression); or any metric of the task
    metric: str = "auto"
    task: str = "auto"  # auto (from the target) | binary | multiclass | regression
    max_concurrent: int = 0  # 0: one trial per available CPU
    cpus_per_trial: float = 1.0
    time_budget_s: Optional[float] = None  # the search stops here; trials cut by it count as stopped
    # The whole training run (ingest to registered model: refits, sample-size runs, report included) ends
    # within about this many seconds: the search gets what is left (at most time_budget_s). null: no bound
    budget_s: Optional[float] = None
    # train | train_val | all: the rows the chosen config is refit on (early-stopped rounds and epochs
    # are scaled to the larger data); the test score always comes from a model that never saw test rows
    refit: RefitMode = RefitMode.train_val
    # Below cv_max_rows training+validation rows, trials score by k-fold cross-validation on those rows
    # (mean and std over the folds on the leaderboard); above it, or with cv_folds < 2, the holdout
    cv_folds: int = 5
    cv_max_rows: int = 10000
    # Known-good configs evaluated before the search samples, at most this many; 0: the search samples from
    # the start. They come from portfolio_source, then the families' hand-picked ones
    portfolio: int = 8
    # null: the portfolio learned offline on the development suite (mlauto/tune/portfolio.json,
    # bench/learn_portfolio.py); hand: the families' hand-picked configs only; or a JSON file of that shape
    portfolio_source: Optional[str] = None
    max_failures: int = 1  # retries of a crashed trial; after them it is marked failed and the search goes on
    gpus_per_trial: float = 0.0  # GPUs per MLP trial when the cluster has them (none: CPU, one warning)
    resume: bool = False  # continue the experiment of the same command (name, run_name, data, seed)
    run_name: Optional[str] = None  # with resume: part of the stable experiment name (default "search")
    progress_interval_s: float = 10.0  # a progress line at most this often
    ensemble: EnsembleConf = field(default_factory=EnsembleConf)
    sample_sizes: SampleSizeConf = field(default_factory=SampleSizeConf)


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
    max_body_bytes: int = 8388608  # counted as the body streams in (chunked bodies too): 413 over it
    max_records: int = 5000  # records per /predict request, and labels per /feedback call: 413 over it
    admin_token: Optional[str] = None  # None: generated at start; only its first characters are logged
    protect_predict: bool = False  # on a loopback host, also require the token on /predict and /feedback
    # routes that need no token when host is not loopback (there every route but /health needs it)
    public_routes: List[str] = field(default_factory=list)
    batch_max_size: int = 32  # concurrent /predict requests scored in one pass
    batch_wait_s: float = 0.002  # how long the first request of a batch waits for others
    poll_s: float = 2.0  # replicas check the champion alias this often and swap in place
    # Ray Serve autoscaling_config (min_replicas, max_replicas, target_ongoing_requests, ...);
    # None: a fixed num_replicas
    autoscaling: Optional[Dict[str, Any]] = None
    # HTTP ingress: haproxy (HAProxy straight to the replicas; ray[serve] ships it on Linux), proxy (Ray
    # Serve's Python proxy actor), auto (haproxy when installed). Applies when mlauto starts Ray.
    ingress: Ingress = Ingress.auto


@dataclass
class MonitorConf:
    actor_name: str = "mlauto-monitor"
    detector: str = "ks"
    # Per-window level, corrected across features (Bonferroni: each feature at p_val / features). A
    # window of 50 rows is tested every 50 rows, so the nominal bound is p_val * 10,000 / window false
    # alarms per 10k rows: 0.0025 -> 0.5 (realized 0-1.0, at most 2 windows in ~200, on held-out rows of 7 datasets with KS;
    # the old 0.05 realized 1-10, up to 20x the 0.5 budget). bench/feature_false_alarms.py
    p_val: float = 0.0025
    window: int = 50  # rows per test; keep p_val * 10,000 / window <= 0.5 when changing it
    retrain: bool = True
    cooldown_s: float = 60.0
    retrain_num_samples: int = 4
    promote_margin: float = 0.0
    perf_window: int = 200  # labels in the rolling accuracy
    min_accuracy: Optional[float] = None  # retrain when rolling accuracy falls below it; null: off
    max_rmse: Optional[float] = None  # regression: retrain when rolling RMSE on feedback rises above it; null: off
    persist: bool = True  # events, state and served rows under <root>/monitor/<actor_name>/
    retrain_schedule: Optional[str] = None  # cron, e.g. "0 3 * * *": also retrain on this schedule
    holdout_labels: int = 50  # newest labelled rows that judge challenger vs champion (not trained on)
    correction: Correction = Correction.bonferroni  # per-feature detectors: bonferroni | fdr (Benjamini-Hochberg)
    options: Dict[str, Any] = field(default_factory=dict)  # detector options, e.g. mmd n_permutations
    # Concept drift from labels: a CUSUM on the error stream against the validation error rate
    label_drift: bool = True
    label_shift: float = 0.05  # the rise in error rate to catch fast
    # labelled rows between false alarms when nothing changed (20,000: 0.5 per 10k rows). The threshold
    # allows for the validation error rate being an estimate and aims 1.25x below 1 / label_ert (one
    # stream's rate is skewed): realized 0.36-0.38 per 10k on simulated no-drift streams (p0 0.05, 0.15 from
    # 1,000 rows); the old plug-in threshold gave 1.0-1.1, and 1.35-2.0 on river streams (issue 15;
    # bench/README.md "Drift alarms that keep their promise")
    label_ert: float = 20000.0
    # live labels (joined to served rows) pooled into the reference error rate, in stages (250, 500,
    # 1,000, ... rows), each re-solving the threshold: a reference that came out low stops alarming
    # within a few hundred rows, and later rises are caught sooner; 0: off
    label_warmup: int = 4000
    # labelled rows behind the validation error rate; null: the model bundle's val_rows (1,000 if absent)
    label_reference_rows: Optional[int] = None
    # a well-typed label of a class the model never saw is quarantined (an event, counted in /drift);
    # true: it joins the labelled rows a retrain learns from
    accept_new_classes: bool = False
    # The monitor's database (served rows, labels, events, state, retrains, history). null: a SQLite file
    # <root>/monitor/<actor_name>/monitor.sqlite (one machine; refused on several Ray nodes and with an
    # object-store root). On a cluster: PostgreSQL, e.g. the tracking server's,
    # postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (the password is redacted in logs)
    state_url: Optional[str] = None
    keep_unlabelled_rows: int = 100000  # newest served rows without a label kept for /feedback (labelled ones stay)
    keep_retrains: int = 100  # retrain records kept
    keep_history: int = 100000  # history entries kept (window tests, label statistics, retrain decisions)
    keep_events: int = 10000  # events kept


@dataclass
class ReplayConf:
    enabled: bool = False
    rows: int = 100
    shift: float = 3.0
    batch: int = 10
    timeout_s: float = 600.0


@dataclass
class PredictConf:
    # action=predict: score a CSV/Parquet file, folder or glob with the champion (or version=N)
    input: Optional[str] = None
    output: Optional[str] = None  # None: <input stem>.predictions.<format>, beside the input
    format: Optional[PredictFormat] = None  # parquet | csv; None: from output's suffix, else parquet
    batch_size: int = 1024  # rows per validated, scored batch
    workers: int = 2  # scoring actors, each loads the model once
    worker_cpus: float = 0.5  # CPUs each actor reserves (leave some for the read tasks)


@dataclass
class ClusterConf:
    address: Optional[str] = None  # None: start a local Ray; "auto", "host:port", "ray://..." connect
    num_cpus: Optional[int] = None
    namespace: str = "mlauto"
    # component (serve, monitor, retrain) -> node labels it prefers, e.g. {monitor: {mlauto.io/role: worker}}:
    # applied softly (Ray label_selector with a fallback to any node), so a lost node's actor restarts elsewhere.
    # Nodes get labels from `ray start --labels`. Tune trials spread by CPUs (Ray has no soft label for them).
    placement: Dict[str, Dict[str, str]] = field(default_factory=dict)


@dataclass
class Config:
    # run: the stages; promote: make `version` the champion; rollback: restore the previous champion;
    # events: print the monitor's events; serve_config: write a `serve deploy` file for the champion;
    # runs: list the experiment's runs; compare: `runs` side by side; reproduce: re-run `run_id`
    # predict: score predict.input with the champion (or `version`)
    # monitor_report: write the monitor's drift timeline (HTML) to the run folder
    action: Action = Action.run
    version: Optional[str] = None
    run_id: Optional[str] = None  # action=reproduce: a trial's or a training run's MLflow run id
    runs: List[str] = field(default_factory=list)  # action=compare: two or more run ids
    name: str = "default"
    # modules to import before validation: a user's own model families, sources or detectors
    # (each registers itself; its YAML goes in a config folder on hydra.searchpath)
    plugins: List[str] = field(default_factory=list)
    stages: List[str] = field(default_factory=lambda: list(STAGES))
    seed: int = 42
    root: str = "runs"
    data: DataConf = field(default_factory=DataConf)
    ingest: IngestConf = field(default_factory=IngestConf)
    prepare: PrepareConf = field(default_factory=PrepareConf)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    families: Dict[str, FamilyConf] = field(default_factory=dict)
    models: ModelsConf = field(default_factory=ModelsConf)
    search: SearchConf = field(default_factory=SearchConf)
    scheduler: SchedulerConf = field(default_factory=SchedulerConf)
    tune: TuneConf = field(default_factory=TuneConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    serve: ServeConf = field(default_factory=ServeConf)
    monitor: MonitorConf = field(default_factory=MonitorConf)
    replay: ReplayConf = field(default_factory=ReplayConf)
    predict: PredictConf = field(default_factory=PredictConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)


S = TypeVar("S")


def section_from_dict(cls: Type[S], data: Optional[Dict[str, Any]]) -> S:
    """A schema dataclass (``Config`` or a section such as :class:`CleanConf`) from a plain dict, typed and
    checked by the schema as Hydra would."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), data or {}))  # type: ignore[return-value]


def config_from_dict(data: dict[str, Any]) -> Config:
    """A :class:`Config` from a plain dict (e.g. the ``config.json`` logged with a run), checked by the schema."""
    return section_from_dict(Config, data)


def plain(value: Any) -> Any:
    """``value`` (a dataclass, dict or list from the schema) as plain JSON/YAML types: Enums become text."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
