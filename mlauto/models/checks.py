"""Config checks of the model families: ``families`` names registered families, each with a search
space whose parameters have a known type and a valid range."""

from __future__ import annotations

from typing import Any

from mlauto.config.checks import check
from mlauto.config.schema import Config, ParamType
from mlauto.errors import ConfigError
from mlauto.models.families import FAMILIES


@check
def check_families(cfg: Config) -> None:
    """Families to tune exist in :data:`FAMILIES`; each space is well formed."""
    names = FAMILIES.names()
    if "tune" in cfg.stages and not cfg.families:
        raise ConfigError("families", {}, names, "select model families, e.g. models=all")
    for name, fam in cfg.families.items():
        if name not in FAMILIES:
            raise ConfigError("families", name, names, "unknown model family")
        check_space(name, fam.space)


def check_space(family: str, space: dict[str, Any]) -> None:
    """``families.<family>.space``: param -> {type, low, high} or {type: choice, values}."""
    for param, spec in space.items():
        key = f"families.{family}.space.{param}"
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(key, spec, hint="each parameter needs a mapping with a 'type'")
        kind = spec["type"]
        if kind not in ParamType.values():
            raise ConfigError(f"{key}.type", kind, ParamType.values())
        if kind == ParamType.choice:
            if not spec.get("values"):
                raise ConfigError(f"{key}.values", spec.get("values"), hint="a non-empty list is required")
        else:
            low, high = spec.get("low"), spec.get("high")
            if low is None or high is None or not low < high:
                raise ConfigError(f"{key}.low/high", (low, high), hint="need low < high")
            if kind in (ParamType.loguniform, ParamType.logint) and low <= 0:
                raise ConfigError(f"{key}.low", low, hint="log scales need low > 0")
