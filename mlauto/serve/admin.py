"""The operator's routes behind ``/admin``: promote a version or roll back, as ``action=promote`` and
``action=rollback`` do. Both always win over a running retrain (see :mod:`mlauto.track.aliases`)."""

from __future__ import annotations

import logging
from typing import Any

import ray

from mlauto.errors import ModelNotFoundError
from mlauto.track import move_champion

logger = logging.getLogger(__name__)


def move(loader: Any, version: str | None, monitor: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
    """Move the champion of ``loader``'s model to ``version`` (None: roll back) off the event loop's
    caller; then the monitor, if any, reloads whatever the alias points to. Returns (status, body)."""
    uri, name = getattr(loader, "uri", None), getattr(loader, "model_name", None)
    if uri is None or name is None:
        return 404, {"detail": "this endpoint's model loader has no registry to move aliases in"}
    try:
        done = move_champion(uri, name, version)
    except ModelNotFoundError as exc:
        return 404, {"detail": str(exc)}
    body: dict[str, Any] = {"champion": done.champion, "previous": done.previous, "monitor_reloaded": False}
    if monitor is not None:
        try:
            actor = ray.get_actor(monitor[0], namespace=monitor[1])
            ray.get(actor.reload.remote(None), timeout=120)
            body["monitor_reloaded"] = True
        except Exception as exc:  # the alias moved; the monitor follows after its next retrain or restart
            logger.warning("monitor not reloaded after an admin move: %s", exc)
    logger.info("admin moved the champion of %s: %s -> %s", name, done.previous, done.champion)
    return 200, body
