"""The one validation pass: stage packages register their config checks here; the launcher runs them
all once, before Ray starts.

A check takes the whole :class:`~mlauto.config.schema.Config` (cross-section rules need it) and raises
:class:`~mlauto.errors.ConfigError` naming the key, the allowed values and the value given. Checks
that need the data (metric against task) run after ingestion instead, not here.
"""

from __future__ import annotations

from typing import Callable

from mlauto.config.schema import Config

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
