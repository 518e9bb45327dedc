"""The Hydra launcher: composes and validates the config, then dispatches ``action`` to :mod:`mlauto.ops`.

This is the only place that reads a DictConfig; library code gets plain dataclasses and objects.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mlauto.config import Config
from mlauto.config.store import CONF_PATH, register_configs
from mlauto.context import CHECK_MODULES, load_checks, to_config  # noqa: F401 - the launcher's config, re-exported
from mlauto.errors import MlautoError

logger = logging.getLogger("mlauto")


# Stages a sweep's jobs leave out: each job trains and registers; none serves or blocks.
SWEEP_SKIPS = ("serve", "monitor")


def sweep_keys(args: list[str]) -> list[str]:
    """The keys a command line sweeps over (``search=optuna,random`` -> ``search``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([a for a in args if "=" in a and not a.startswith("-")])
    return [o.get_key_element() for o in parsed if o.is_sweep_override()]


def sweep_job(conf: Config, task_overrides: list[str], keys: list[str], job_num: int) -> Config:
    """``conf`` for one job of ``mlauto -m``: trains and registers under its own model name (the base
    name plus the swept values, e.g. ``mlauto-default-search-random-models-fast``), never serves or
    blocks. Asking a sweep to serve (``stages`` naming serve or monitor, a schedule) is refused."""
    import dataclasses
    import re

    from mlauto.context import model_name
    from mlauto.errors import ConfigError

    if conf.action != "run":
        return conf
    given = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in task_overrides if "=" in o}
    if "stages" in given and any(s in conf.stages for s in SWEEP_SKIPS):
        raise ConfigError("stages", list(conf.stages), hint="a sweep (-m) trains and registers one model per job and "
                          "serves none; leave serve and monitor out, then serve the winner with "
                          "`mlauto stages=[serve,monitor] tracking.model_name=NAME`")
    if conf.ingest.schedule:
        raise ConfigError("ingest.schedule", conf.ingest.schedule, hint="a sweep (-m) does not run schedules")
    swept = "-".join(f"{k}-{given[k]}" for k in keys if k in given) or f"job{job_num}"
    name = f"{model_name(conf)}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', swept).strip('-')}"
    stages = [s for s in conf.stages if s not in SWEEP_SKIPS]
    logger.info("sweep job %d: stages %s, registers model %s", job_num, ",".join(stages), name)
    return dataclasses.replace(conf, stages=stages, tracking=dataclasses.replace(conf.tracking, model_name=name),
                               serve=dataclasses.replace(conf.serve, blocking=False))


def _run(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    summary = ops.run(conf, output_dir)
    done = {k: summary.get(k) for k in ("best_family", "model_version", "endpoint")}
    retrain = (summary.get("replay") or {}).get("retrain") or {}
    if retrain.get("promoted"):  # the replay's retrain moved the alias: say which version serves now
        done["serving_version"] = str(retrain.get("version"))
    logger.info("done: %s", done)


def _events(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    for event in ops.manage(conf):  # the command's output: one JSON object per line
        sys.stdout.write(json.dumps(event, default=str) + "\n")


def _predict(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    sys.stdout.write(json.dumps(ops.predict(conf), default=str) + "\n")  # the command's output


def _serve_config(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    ops.serve_config(conf, os.path.join(output_dir, "serve_config.yaml"))


def _monitor_report(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    ops.monitor_report(conf, os.path.join(output_dir, "monitor_report.html"))  # logs its path


def _table(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    sys.stdout.write(ops.manage(conf) + "\n")  # the command's output: a table


def _reproduce(conf: Config, output_dir: str) -> None:
    from mlauto import ops
    from mlauto.reproduce import format_reproduce

    result = ops.manage(conf)
    sys.stdout.write(format_reproduce(result) + "\n")
    if not result["ok"]:
        sys.exit(1)


def _manage(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    logger.info("%s: %s", conf.action, ops.manage(conf))


# action -> what the command does with it; any other action (promote, rollback, snapshots, schedule*)
# logs what :func:`mlauto.ops.manage` returns.
DISPATCH: dict[str, Callable[[Config, str], None]] = {
    "run": _run, "events": _events, "predict": _predict, "serve_config": _serve_config,
    "runs": _table, "compare": _table, "reproduce": _reproduce, "monitor_report": _monitor_report,
}


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from mlauto import console

    console.install()  # before Ray starts: its workers inherit the quiet settings
    console.filter_streams()  # printed noise (Tune's box, MLflow's registry lines, workers') to the log file
    hydra_conf = HydraConfig.get()
    try:
        conf = to_config(cfg)
        if hydra_conf.mode == RunMode.MULTIRUN:
            conf = sweep_job(conf, list(hydra_conf.overrides.task), sweep_keys(sys.argv[1:]), hydra_conf.job.num)
    except MlautoError as exc:
        logger.error("%s", exc)
        sys.exit(2)
    address = conf.cluster.address
    if address and address.startswith(("http://", "https://")):
        from mlauto.ops import submit_job

        sys.exit(submit_job(address, sys.argv[1:]))
    try:
        DISPATCH.get(conf.action, _manage)(conf, hydra_conf.runtime.output_dir)
    except MlautoError as exc:
        logger.error("%s", exc)
        sys.exit(1)


def main() -> None:
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args()  # models=all takes in the model files of the user's folders
    register_configs(args.overrides, args.config_dir)
    _hydra_main()


if __name__ == "__main__":
    main()
