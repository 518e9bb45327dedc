"""The Hydra launcher: composes and validates the config, then dispatches ``action`` to :mod:`mlauto.ops`.

This is the only place that reads a DictConfig; library code gets plain dataclasses and objects.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mlauto import storage
from mlauto.config import Config, validate
from mlauto.config.store import CONF_PATH, register_configs
from mlauto.errors import MlautoError
from mlauto.registry import import_plugins

logger = logging.getLogger("mlauto")


# The modules that register config checks (mlauto.config.checks.check), in the order their checks run.
CHECK_MODULES = ("mlauto.track.checks", "mlauto.data.checks", "mlauto.features.checks", "mlauto.models.checks",
                 "mlauto.tune.checks", "mlauto.serve.checks", "mlauto.monitor.checks", "mlauto.runtime")


def load_checks() -> None:
    """Import every module that registers config checks (the config package imports no stage)."""
    for name in CHECK_MODULES:
        importlib.import_module(name)


def to_config(cfg: DictConfig) -> Config:
    """DictConfig -> validated :class:`Config`, with user paths made absolute.

    Trials and retrain tasks run in other working directories, so relative paths would break there.
    """
    from mlauto.data import resolve_data

    conf: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    import_plugins(conf.plugins)  # a user's families, sources, detectors: registered before validation
    load_checks()
    validate(conf)
    conf.root = storage.normalize(conf.root)  # absolute, or an object-store URI (s3://, gs://)
    conf.data = resolve_data(conf.data)  # the selected source's own path fixing (data.path, data.url)
    for key in ("input", "output"):
        value = getattr(conf.predict, key)
        if value:
            setattr(conf.predict, key, storage.normalize(value))
    return conf


def _run(conf: Config, output_dir: str) -> None:
    from mlauto import ops

    summary = ops.run(conf, output_dir)
    logger.info("done: %s", {k: summary.get(k) for k in ("best_family", "model_version", "endpoint")})


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
    "runs": _table, "compare": _table, "reproduce": _reproduce,
}


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        conf = to_config(cfg)
    except MlautoError as exc:
        logger.error("%s", exc)
        sys.exit(2)
    address = conf.cluster.address
    if address and address.startswith(("http://", "https://")):
        from mlauto.ops import submit_job

        sys.exit(submit_job(address, sys.argv[1:]))
    try:
        DISPATCH.get(conf.action, _manage)(conf, HydraConfig.get().runtime.output_dir)
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
