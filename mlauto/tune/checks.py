"""Config checks of the search: ``search.*``, ``scheduler.*`` and ``tune.*`` (metric and task, budgets,
ensemble and sample-size runs). Which metric fits the data's task is checked after ingestion."""

from __future__ import annotations

from mlauto.config.checks import check
from mlauto.config.schema import Config
from mlauto.errors import ConfigError
from mlauto.tasks import AUTO, METRICS, TASKS, metric_for_task
from mlauto.tune.portfolio import check_source


@check
def check_search(cfg: Config) -> None:
    """search.* and scheduler.*: grid sizes and ASHA's rungs."""
    s, sc = cfg.search, cfg.scheduler
    if s.grid_points_per_param < 2:
        raise ConfigError("search.grid_points_per_param", s.grid_points_per_param, "an integer >= 2")
    if s.max_grid_size < 1:
        raise ConfigError("search.max_grid_size", s.max_grid_size, "an integer >= 1")
    if sc.grace_period < 1:
        raise ConfigError("scheduler.grace_period", sc.grace_period, "an integer >= 1 (epochs)")
    if sc.reduction_factor <= 1:
        raise ConfigError("scheduler.reduction_factor", sc.reduction_factor, "a number > 1")
    if sc.max_t < sc.grace_period:
        raise ConfigError("scheduler.max_t", sc.max_t, f"an integer >= scheduler.grace_period ({sc.grace_period})")


@check
def check_tune(cfg: Config) -> None:
    """tune.*: metric and task, trial resources, budgets, resume and progress."""
    t = cfg.tune
    if t.gpus_per_trial < 0:
        raise ConfigError("tune.gpus_per_trial", t.gpus_per_trial, "a number >= 0 (0: CPU only)")
    if t.max_failures < 0:
        raise ConfigError("tune.max_failures", t.max_failures, "an integer >= 0")
    if t.progress_interval_s <= 0:
        raise ConfigError("tune.progress_interval_s", t.progress_interval_s, "seconds > 0")
    if t.run_name is not None and (not t.run_name or any(c in t.run_name for c in "/\\ ")):
        raise ConfigError("tune.run_name", t.run_name, "null or a name without spaces or slashes")
    if t.metric != AUTO and t.metric not in METRICS:
        raise ConfigError("tune.metric", t.metric, [AUTO, *sorted(METRICS)])
    if t.task != AUTO and t.task not in TASKS:
        raise ConfigError("tune.task", t.task, (AUTO, *TASKS))
    if t.task != AUTO and t.metric != AUTO:
        metric_for_task(t.metric, t.task)
    if t.num_samples is not None and t.num_samples < 1:
        raise ConfigError("tune.num_samples", t.num_samples,
                          "null (16, or no cap when tune.time_budget_s is set) or an integer >= 1")
    if t.cpus_per_trial <= 0:
        raise ConfigError("tune.cpus_per_trial", t.cpus_per_trial, "a number > 0")
    if t.cv_folds < 0 or t.cv_folds == 1:
        raise ConfigError("tune.cv_folds", t.cv_folds, "0 (holdout) or an integer >= 2")
    if t.cv_max_rows < 0:
        raise ConfigError("tune.cv_max_rows", t.cv_max_rows, "an integer >= 0")
    if t.portfolio < 0:
        raise ConfigError("tune.portfolio", t.portfolio, "an integer >= 0 (0: no known-good configs first)")
    check_source(t.portfolio_source)
    if t.budget_s is not None and not t.budget_s > 0:
        raise ConfigError("tune.budget_s", t.budget_s, "null (no bound) or seconds > 0")
    if t.time_budget_s is not None and not t.time_budget_s > 0:
        raise ConfigError("tune.time_budget_s", t.time_budget_s, "null (no limit) or seconds > 0")


@check
def check_selection(cfg: Config) -> None:
    """tune.ensemble and tune.sample_sizes."""
    e, s = cfg.tune.ensemble, cfg.tune.sample_sizes
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
