"""Connecting to Ray: a local instance by default, or an existing cluster."""

from __future__ import annotations

import logging

import ray

logger = logging.getLogger(__name__)


def connect(address: str | None, namespace: str, num_cpus: int | None = None) -> bool:
    """Initialise Ray; returns True when this process started the cluster (and so must stop it)."""
    if ray.is_initialized():
        return False
    if address is None:
        # "local" always starts a new instance, even when a `ray start` cluster or RAY_ADDRESS exists:
        # this process owns it and may shut it down.
        ctx = ray.init(address="local", num_cpus=num_cpus, namespace=namespace)
        logger.info("started a local Ray with %s CPUs; dashboard: %s", ray.cluster_resources().get("CPU"),
                    f"http://{ctx.dashboard_url}" if ctx.dashboard_url else "not installed")
        return True
    ray.init(address=address, namespace=namespace)
    logger.info("connected to the Ray cluster at %s (%s CPUs)", address, ray.cluster_resources().get("CPU"))
    return False
