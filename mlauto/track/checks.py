"""Config checks of the actions on tracked models and runs: ``promote`` needs a version, ``reproduce``
a run id, ``compare`` two or more runs."""

from __future__ import annotations

from mlauto import storage
from mlauto.config.checks import check
from mlauto.config.schema import Action, Config
from mlauto.errors import ConfigError

RUNS_HINT = "`mlauto action=runs` lists the run ids"


@check
def check_run_actions(cfg: Config) -> None:
    if cfg.action == Action.promote and not cfg.version:
        raise ConfigError("version", cfg.version, "a registered version number", "action=promote needs version=N")
    if cfg.action == Action.reproduce and not (cfg.run_id and str(cfg.run_id).strip()):
        raise ConfigError("run_id", cfg.run_id, "an MLflow run id",
                          f"action=reproduce needs run_id=<id>; {RUNS_HINT}")
    if cfg.action == Action.compare:
        runs = list(cfg.runs or [])
        if len(runs) < 2 or any(not str(r).strip() for r in runs):
            raise ConfigError("runs", runs, "a list of two or more run ids",
                              f"action=compare needs runs=[<id>,<id>]; {RUNS_HINT}")


@check
def check_tracking_store(cfg: Config) -> None:
    """An object-store root holds no SQLite file: the default tracking store needs a local root."""
    if storage.is_uri(cfg.root) and not cfg.tracking.uri:
        raise ConfigError("tracking.uri", cfg.tracking.uri, "a tracking server URL or a database URI",
                          f"root={cfg.root} is an object store, where MLflow's default SQLite file cannot live; "
                          "use tracking=server (tracking.uri=http://HOST:5000, an MLflow server on PostgreSQL), "
                          "or on one machine tracking.uri=sqlite:////abs/path/mlflow.db")
