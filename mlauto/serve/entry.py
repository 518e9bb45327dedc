"""The app builder a ``serve deploy`` config file names (``import_path: mlauto.serve.entry:build``).

Write such a file with ``mlauto action=serve_config``; ``args`` carry plain values (tracking URI,
model name, serving options), and the builder turns them into the same app ``mlauto`` runs itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from ray import serve

from mlauto.errors import ConfigError
from mlauto.serve.app import build_app
from mlauto.track import BundleLoader


def build(args: dict[str, Any]) -> serve.Application:
    """``args``: ``tracking_uri``, ``model_name``, optional ``version`` and :func:`build_app`'s options."""
    args = dict(args)
    allowed = sorted(["tracking_uri", "model_name"] + list(inspect.signature(build_app).parameters)[1:])
    unknown = sorted(set(args) - set(allowed))
    if unknown or "tracking_uri" not in args or "model_name" not in args:
        raise ConfigError("applications[].args", sorted(args), f"tracking_uri, model_name and any of {allowed}")
    loader = BundleLoader(args.pop("tracking_uri"), args.pop("model_name"))
    return build_app(loader, **args)
