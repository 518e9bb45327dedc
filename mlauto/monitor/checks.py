"""Config checks of the monitor: ``monitor.*`` (a registered detector and only its options, test and
window sizes, retraining triggers and schedule, the state database and its retention). ``monitor.correction`` is an Enum of the schema."""

from __future__ import annotations

from mlauto.config.checks import check
from mlauto.config.schema import Config
from mlauto.errors import ConfigError
from mlauto.monitor.detectors import DETECTORS
from mlauto.redact import redact_url


@check
def check_detector(cfg: Config) -> None:
    """``monitor.detector`` is registered; ``monitor.options`` are options it takes."""
    m = cfg.monitor
    if m.detector not in DETECTORS:
        raise ConfigError("monitor.detector", m.detector, DETECTORS.names())
    accepted = DETECTORS.get(m.detector).OPTIONS
    unknown = sorted(set(m.options) - set(accepted))
    if unknown:
        raise ConfigError("monitor.options", unknown, sorted(accepted) or "no options",
                          f"options of detector {m.detector!r}")


@check
def check_monitor(cfg: Config) -> None:
    """Label drift, test level and windows, accuracy/RMSE triggers, retraining schedule and sizes."""
    m = cfg.monitor
    if not 0.0 < m.label_shift < 1.0:
        raise ConfigError("monitor.label_shift", m.label_shift, "a rise in error rate in (0, 1)")
    if m.label_ert <= 1:
        raise ConfigError("monitor.label_ert", m.label_ert, "a number of labelled rows > 1")
    if m.label_warmup < 0:
        raise ConfigError("monitor.label_warmup", m.label_warmup, "a number of labelled rows >= 0")
    if m.label_reference_rows is not None and m.label_reference_rows < 1:
        raise ConfigError("monitor.label_reference_rows", m.label_reference_rows,
                          "a number of labelled rows >= 1, or null (the bundle's validation rows)")
    if not 0.0 < m.p_val < 1.0:
        raise ConfigError("monitor.p_val", m.p_val, "a probability in (0, 1)")
    if m.window < 10:
        raise ConfigError("monitor.window", m.window, "an integer >= 10")
    if m.min_accuracy is not None and not 0.0 < m.min_accuracy <= 1.0:
        raise ConfigError("monitor.min_accuracy", m.min_accuracy, "null or a fraction in (0, 1]")
    if m.max_rmse is not None and not m.max_rmse > 0:
        raise ConfigError("monitor.max_rmse", m.max_rmse, "null or a number > 0, in the target's units")
    if m.perf_window < 10:
        raise ConfigError("monitor.perf_window", m.perf_window, "an integer >= 10")
    if m.retrain_schedule is not None:
        from croniter import croniter

        if not croniter.is_valid(m.retrain_schedule):
            raise ConfigError("monitor.retrain_schedule", m.retrain_schedule,
                              'null or a cron expression such as "0 3 * * *" (5 fields, or 6 with seconds)')
    if m.holdout_labels < 10:
        raise ConfigError("monitor.holdout_labels", m.holdout_labels, "an integer >= 10")
    if m.retrain_num_samples < 1:
        raise ConfigError("monitor.retrain_num_samples", m.retrain_num_samples, "an integer >= 1")


@check
def check_state(cfg: Config) -> None:
    """``monitor.state_url`` is a SQLAlchemy URL of a supported database; the ``keep_*`` limits are >= 1."""
    m = cfg.monitor
    if m.state_url is not None and not m.state_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError("monitor.state_url", redact_url(m.state_url),
                          "null (a SQLite file under root), sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    for key in ("keep_unlabelled_rows", "keep_retrains", "keep_history", "keep_events"):
        if getattr(m, key) < 1:
            raise ConfigError(f"monitor.{key}", getattr(m, key), "an integer >= 1")
