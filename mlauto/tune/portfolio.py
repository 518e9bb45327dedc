"""The learned portfolio: configs that did well across the development suite, evaluated first.

``portfolio.json`` beside this module is written by ``bench/learn_portfolio.py`` (offline: every
candidate config scored on every suite dataset's training rows, then a greedy pick of the configs whose
best covers the most datasets). ``tune.portfolio_source`` chooses it (null), the families' hand-picked
configs only (``hand``), or another file of the same shape (the suite judges each dataset with a
portfolio learned without it).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlauto import storage
from mlauto.errors import ConfigError

HAND = "hand"
PACKAGED = os.path.join(os.path.dirname(__file__), "portfolio.json")


def read_portfolio(path: str) -> list[dict[str, Any]]:
    """The ``configs`` of a portfolio file (a path or an object-store URI, as a retrain task on another
    node must read it too): a list of ``{"family": name, "params": {...}}``."""
    with storage.open_input(path) as f:
        configs = json.loads(f.read().decode("utf-8")).get("configs")
    if not isinstance(configs, list) or not all(isinstance(c, dict) and isinstance(c.get("family"), str)
                                                and isinstance(c.get("params"), dict) for c in configs):
        raise ValueError(f"{path}: 'configs' must be a list of {{'family': name, 'params': {{...}}}}")
    return configs


def load_portfolio(source: str | None) -> list[dict[str, Any]] | None:
    """The learned configs ``source`` names: None for ``hand`` (or no packaged file)."""
    if source == HAND:
        return None
    if source is None:
        return read_portfolio(PACKAGED) if os.path.exists(PACKAGED) else None
    return read_portfolio(source)


def check_source(source: str | None) -> None:
    """Refuse a portfolio file that is absent or malformed, before Ray starts."""
    if source is None or source == HAND:
        return
    try:
        read_portfolio(source)
    except (OSError, ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError; a list has no .get
        raise ConfigError("tune.portfolio_source", source,
                          "null (the learned portfolio shipped with mlauto), 'hand' (the families' hand-picked "
                          f"configs only) or a readable portfolio JSON file ({exc})") from None
