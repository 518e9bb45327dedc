"""The one validation pass: stage packages register their config checks here; the launcher imports
them (:func:`mlauto.context.load_checks`) and runs them all once, before Ray starts.

A check takes the whole :class:`~mlauto.config.schema.Config` (cross-section rules need it) and raises
:class:`~mlauto.errors.ConfigError` naming the key, the allowed values and the value given. Checks
that need the data (metric against task) run after ingestion instead, not here. Fixed choices are Enums
of the schema and need no check; this package imports no stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from mlauto.config.schema import STAGES, CleanConf, Config
from mlauto.errors import ConfigError

Check = Callable[[Config], None]
_CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    """Decorator: register ``fn`` (once, by qualified name) as a config check."""
    _CHECKS[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def run_checks(cfg: Config) -> Config:
    """Run every registered check in registration order; return ``cfg`` for chaining."""
    for fn in list(_CHECKS.values()):
        fn(cfg)
    return cfg


def registered() -> list[str]:
    """The qualified names of the registered checks, in the order they run."""
    return list(_CHECKS)


# Hydra's ``+section.key=value`` adds a key the schema lacks without an error (OmegaConf keeps it as a
# plain attribute); name it instead of ignoring it.
_UNKNOWN_HINTS = {CleanConf: "unknown cleaning option"}


@check
def check_unknown_keys(cfg: Config) -> None:
    """No key outside the schema (one added with ``+``)."""
    _unknown_keys(cfg, "")


def _unknown_keys(node: Any, prefix: str) -> None:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        names = [f.name for f in dataclasses.fields(node)]
        for key, value in vars(node).items():
            if key not in names:
                raise ConfigError(f"{prefix}{key}", value, names, _UNKNOWN_HINTS.get(type(node), "unknown key"))
        for name in names:
            _unknown_keys(getattr(node, name), f"{prefix}{name}.")
    elif isinstance(node, dict):
        for key, value in node.items():
            _unknown_keys(value, f"{prefix}{key}.")


@check
def check_stages(cfg: Config) -> None:
    """``stages``: at least one, each a stage of :data:`~mlauto.config.schema.STAGES`."""
    if not cfg.stages:
        raise ConfigError("stages", cfg.stages, STAGES, "choose at least one stage")
    for stage in cfg.stages:
        if stage not in STAGES:
            raise ConfigError("stages", stage, STAGES)


validate = run_checks
