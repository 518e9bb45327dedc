"""The app builder a ``serve deploy`` config file names (``import_path: mlauto.serve.entry:build``).

Write such a file with ``mlauto action=serve_config``; ``args`` carry plain values (tracking URI,
model name, version, the monitor actor and the ``serve`` keys the app reads), and the builder turns
them into the same app ``mlauto`` runs itself.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from mlauto.config.schema import ServeConf
from mlauto.errors import ConfigError
from mlauto.serve.app import APP_KEYS, build_app
from mlauto.track import BundleLoader


def build(args: dict[str, Any]) -> serve.Application:
    """``args``: ``tracking_uri``, ``model_name``, optional ``version``, ``monitor`` (``{name, namespace}``)
    and any ``serve`` key of :data:`APP_KEYS` (the schema's default for the others)."""
    args = dict(args)
    allowed = sorted(["tracking_uri", "model_name", "version", "monitor", *APP_KEYS])
    unknown = sorted(set(args) - set(allowed))
    if unknown or "tracking_uri" not in args or "model_name" not in args:
        raise ConfigError("applications[].args", sorted(args), f"tracking_uri, model_name and any of {allowed}")
    loader = BundleLoader(args.pop("tracking_uri"), args.pop("model_name"))
    version, monitor = args.pop("version", None), args.pop("monitor", None)
    return build_app(loader, ServeConf(**args), version, monitor)
