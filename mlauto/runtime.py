"""Connecting to Ray: a local instance by default, or an existing cluster."""

from __future__ import annotations

import logging
import os
import shutil

import ray

logger = logging.getLogger(__name__)


def serve_ingress_env(ingress: str) -> dict[str, str]:
    """Environment that makes Ray Serve route HTTP through HAProxy straight to the replicas.

    Ray 2.60's default ingress is a Python proxy actor: one more hop, about 10 ms per request on a
    small machine. With ``RAY_SERVE_ENABLE_HA_PROXY`` (and the throughput-optimized settings) each
    replica serves HTTP itself and an HAProxy process balances the Serve port across them.
    ``ingress``: ``haproxy``, ``proxy`` or ``auto`` (HAProxy when the ``haproxy`` binary is installed).
    """
    if ingress == "proxy" or (ingress == "auto" and shutil.which("haproxy") is None):
        return {}
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def connect(address: str | None, namespace: str, num_cpus: int | None = None,
            env: dict[str, str] | None = None) -> bool:
    """Initialise Ray; returns True when this process started the cluster (and so must stop it).

    ``env`` is set for the Ray processes this call starts (it cannot reach an existing cluster's).
    """
    if ray.is_initialized():
        return False
    if address is not None and env:
        missing = {k: v for k, v in env.items() if os.environ.get(k) != v}
        if missing:
            logger.info("an existing cluster keeps its own settings; for the same serving path start its nodes "
                        "with %s", " ".join(f"{k}={v}" for k, v in missing.items()))
    if address is None:
        os.environ.update(env or {})
        # "local" always starts a new instance, even when a `ray start` cluster or RAY_ADDRESS exists:
        # this process owns it and may shut it down.
        ctx = ray.init(address="local", num_cpus=num_cpus, namespace=namespace)
        logger.info("started a local Ray with %s CPUs; dashboard: %s", ray.cluster_resources().get("CPU"),
                    f"http://{ctx.dashboard_url}" if ctx.dashboard_url else "not installed")
        return True
    ray.init(address=address, namespace=namespace)
    logger.info("connected to the Ray cluster at %s (%s CPUs)", address, ray.cluster_resources().get("CPU"))
    return False
