"""Operating what was trained: the full run (train, serve, monitor, replay), serving and its
``serve deploy`` file, promotion and rollback, the monitor's events, scheduled ingestion, snapshots,
tracked runs, batch scoring and job submission. The launcher dispatches each ``action`` here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

from mlauto import runtime, storage
from mlauto.config import Config
from mlauto.context import Paths, block_until_stopped, data_source, loader_for, model_name, stage, tracking_uri, \
    write_summary
from mlauto.data import Snapshot
from mlauto.retrain import promote_version, retrain
from mlauto.track import previous_champion, promote
from mlauto.train import Trained, ingest_stage, prepare_stage, quarantine_summary, train, training_summary

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`execute` did: the summary written to ``summary.json``, and the trained artifacts
    (None when the tune stage did not run)."""

    summary: dict[str, Any]
    trained: Trained | None
    config: Config

def check_storage(cfg: Config, monitor: bool = False) -> int:
    """The cluster storage probe (:func:`mlauto.runtime.check_cluster_storage`) for this config; with
    ``monitor``, the monitor's database too (``monitor.state_url``)."""
    state_url = None
    if monitor:
        from mlauto.monitor.store import state_url_for

        state_url = state_url_for(cfg.root, cfg.monitor)
    return runtime.check_cluster_storage(cfg.root, tracking_uri(cfg), monitor_state_url=state_url)


def run(cfg: Config, output_dir: str) -> dict[str, Any]:
    """Run the configured stages and write ``summary.json`` to ``output_dir``."""
    return execute(cfg, output_dir).summary


def with_admin_token(cfg: Config) -> Config:
    """``cfg`` with an admin token for serving: the configured one, or one generated here (and logged)."""
    if cfg.serve.admin_token:
        return cfg
    cfg = dataclasses.replace(cfg, serve=dataclasses.replace(cfg.serve, admin_token=secrets.token_urlsafe(24)))
    show_token(cfg.serve.admin_token)
    return cfg


def start_monitoring(cfg: Config) -> dict[str, Any]:
    """Start (or replace) the monitor actor of ``cfg.monitor`` for the champion; Ray must be connected.
    Returns what ``summary.json`` says about it."""
    from functools import partial

    from mlauto.monitor import start_monitor

    from mlauto.monitor.store import state_url_for
    from mlauto.redact import redact_url

    m = cfg.monitor
    url = state_url_for(cfg.root, m)
    local = m.persist and not storage.is_uri(cfg.root)  # a folder for the detector's cache
    start_monitor(loader_for(cfg), m, cfg.cluster.namespace,
                  runtime.Placed(partial(retrain, cfg), runtime.placement(cfg.cluster, "retrain")),
                  options=runtime.placement(cfg.cluster, "monitor"), target=cfg.data.target,
                  state_dir=os.path.join(cfg.root, "monitor", m.actor_name) if local else None, state_url=url)
    return {"actor": m.actor_name, "namespace": cfg.cluster.namespace, "detector": m.detector, "window": m.window,
            "state_url": redact_url(url) if url else None}


def execute(cfg: Config, output_dir: str) -> RunResult:
    """:func:`run`, returning the trained artifacts too (the Python API's ``fit``)."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"experiment": cfg.name, "stages": list(cfg.stages), "output_dir": output_dir,
                               "tracking_uri": tracking_uri(cfg), "model_name": model_name(cfg), "endpoint": None}
    if "serve" in cfg.stages:  # generated once per run, so the swap after a retrain keeps it
        cfg = with_admin_token(cfg)
    owns_ray = runtime.connect(cfg.cluster.address, cfg.cluster.namespace, cfg.cluster.num_cpus,
                               env=runtime.serve_ingress_env(cfg.serve.ingress) if "serve" in cfg.stages else None)
    served = monitored = scheduled = False
    try:
        # on several nodes: root seen by all, no SQLite tracking or monitor state; before any work
        check_storage(cfg, monitor="monitor" in cfg.stages)
        version: str | None = None
        trained = None
        if "tune" in cfg.stages:
            trained = train(cfg, timings)
            version = trained.tracked.version
            promote(tracking_uri(cfg), model_name(cfg), version)
            summary.update(training_summary(trained, cfg))
        else:
            if "ingest" in cfg.stages or "prepare" in cfg.stages:
                snapshot = ingest_stage(cfg, timings)
                summary.update(data_fingerprint=snapshot.fingerprint, snapshot=snapshot.path)
                if "prepare" in cfg.stages:
                    splits, _, _ = prepare_stage(cfg, snapshot, timings)
                    summary["rows"] = splits.counts()
                    summary["quarantine"] = quarantine_summary(splits)
                    summary["data_quality"] = splits.quality
            if "serve" in cfg.stages or "monitor" in cfg.stages:
                version = loader_for(cfg).resolve(None)
                summary["model_version"] = version
        if "monitor" in cfg.stages:
            with stage("monitor", timings):
                summary["monitor"] = start_monitoring(cfg)
                monitored = True
        if "serve" in cfg.stages:
            with stage("serve", timings):
                summary["endpoint"] = serve_version(cfg, None)  # follows the champion alias
                served = True
        if cfg.replay.enabled and served and "monitor" in cfg.stages and trained is not None:
            with stage("replay", timings):
                summary["replay"] = _replay(cfg, summary["endpoint"], trained)
        if cfg.ingest.schedule:
            summary["schedule"] = start_ingest_schedule(cfg)
            scheduled = True
        summary["status"] = "ok"
        summary["stage_seconds"] = timings
        summary["total_seconds"] = round(time.perf_counter() - start, 3)
        write_summary(summary, output_dir)
        log_where(cfg, summary, output_dir, stays_up=owns_ray and cfg.serve.blocking or not owns_ray)
        if (served or monitored) and owns_ray and cfg.serve.blocking:
            block_until_stopped(summary["endpoint"] or f"monitor actor {cfg.monitor.actor_name}")
        elif scheduled and owns_ray and cfg.serve.blocking:  # the scheduler lives in this Ray
            block_until_stopped(repr(cfg.ingest.schedule), "ingesting on schedule %s")
        return RunResult(summary, trained, cfg)
    except BaseException as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}", stage_seconds=timings,
                       total_seconds=round(time.perf_counter() - start, 3))
        write_summary(summary, output_dir)
        raise
    finally:
        if owns_ray:
            runtime.stop(owned=True, served=served)


def show_token(token: str) -> None:
    """A generated token is logged only by its prefix (logs are files others read); the whole token goes
    to the terminal alone, when there is one."""
    from mlauto.serve.guard import token_hint

    logger.info("admin token %s generated for the routes that need it (Authorization: Bearer ...); set "
                "serve.admin_token to choose your own", token_hint(token))
    if sys.stderr.isatty():
        sys.stderr.write(f"admin token (shown once, not logged): {token}\n")


def log_where(cfg: Config, summary: dict[str, Any], output_dir: str, stays_up: bool) -> None:
    """The run's last lines: where the summary, report, log, MLflow UI, dashboard and endpoint are."""
    import ray

    lines = [f"summary:   {os.path.join(output_dir, 'summary.json')}"]
    if summary.get("report"):
        lines.append(f"report:    {summary['report']}")
    log_file = os.path.join(output_dir, "mlauto.log")
    if os.path.exists(log_file):
        lines.append(f"log:       {log_file}")
    uri = tracking_uri(cfg)
    lines.append(f"MLflow UI: mlflow ui --backend-store-uri {shlex.quote(uri)}" if uri.startswith("sqlite:")
                 else f"MLflow:    {uri}")
    if stays_up and ray.is_initialized():
        try:
            from ray._private.worker import get_dashboard_url

            if url := get_dashboard_url():
                lines.append(f"dashboard: http://{url}" if "://" not in url else f"dashboard: {url}")
        except Exception:  # noqa: BLE001 - no dashboard installed
            pass
    if summary.get("endpoint"):
        lines.append(f"endpoint:  {summary['endpoint']} (POST /predict, POST /feedback, GET /drift, GET /report, GET /docs)"
                     + ("" if stays_up else "; stopped with this command (serve.blocking=false)"))
    logger.info("where everything is:\n  %s", "\n  ".join(lines))


def _replay(cfg: Config, url: str, trained: Trained) -> dict[str, Any]:
    from mlauto.monitor.replay import replay

    splits = trained.splits
    rows = splits.test.head(cfg.replay.rows)
    std = splits.train[splits.features].select_dtypes("number").std()
    return replay(url, rows[splits.features], rows[splits.target].to_numpy(), std, shift=cfg.replay.shift,
                  batch=cfg.replay.batch, timeout_s=cfg.replay.timeout_s)


def monitor_link(cfg: Config) -> dict[str, str] | None:
    """The monitor actor the endpoint sends its traffic to: ``{name, namespace}``, or None without the monitor stage."""
    return {"name": cfg.monitor.actor_name, "namespace": cfg.cluster.namespace} if "monitor" in cfg.stages else None


def serve_version(cfg: Config, version: str | None) -> str:
    from mlauto.serve import deploy

    return deploy(loader_for(cfg), cfg.serve, version, monitor_link(cfg), runtime.placement(cfg.cluster, "serve"))


def serve_config(cfg: Config, path: str) -> dict[str, Any]:
    """Write a ``serve deploy`` config file for the champion (or ``cfg.version``); returns its content.

    The file holds the admin token (generated here when none is configured), so it is made
    readable by its owner only.
    """
    import yaml

    from mlauto.serve.app import APP_KEYS
    from mlauto.serve.guard import token_hint

    s = cfg.serve
    options = {key: getattr(s, key) for key in APP_KEYS}
    if options["autoscaling"]:
        options["autoscaling"] = dict(options["autoscaling"])
    options["public_routes"] = [str(r) for r in options["public_routes"] or []]
    if not options["admin_token"]:
        options["admin_token"] = secrets.token_urlsafe(24)
        logger.info("generated an admin token (%s) into %s (mode 600)", token_hint(options["admin_token"]), path)
    content = {
        "proxy_location": "EveryNode",
        "http_options": {"host": s.host, "port": s.port},
        "applications": [{
            "name": s.app_name, "route_prefix": s.route_prefix, "import_path": "mlauto.serve.entry:build",
            "args": {"tracking_uri": tracking_uri(cfg), "model_name": model_name(cfg),
                     "version": cfg.version, "monitor": monitor_link(cfg), **options},
        }],
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(content, fh, sort_keys=False)
    logger.info("wrote %s; deploy it with: RAY_AUTH_MODE=token serve deploy %s (the cluster needs mlauto "
                "installed and access to %s)", path, path, tracking_uri(cfg))
    return content


def monitor_events(cfg: Config, limit: int = 100) -> list[dict[str, Any]]:
    """The monitor's events, newest last: from the running actor when connected, else from its log on disk."""
    import ray

    actor = _running_monitor(cfg)
    if actor is not None:
        return ray.get(actor.events_log.remote(limit))
    return _stored(cfg, "events", limit)


def _running_monitor(cfg: Config) -> Any:
    """The monitor actor when this process is connected to Ray and it runs there, else None."""
    import ray

    if not ray.is_initialized():
        return None
    try:
        return ray.get_actor(cfg.monitor.actor_name, namespace=cfg.cluster.namespace)
    except ValueError:
        return None


def _stored(cfg: Config, what: str, limit: int | None) -> list[dict[str, Any]]:
    """The monitor's ``events`` or ``history`` from its database (no running monitor needed)."""
    from mlauto.errors import MlautoError
    from mlauto.monitor.store import MonitorStore, is_sqlite, state_url_for
    from mlauto.redact import redact_url

    url = state_url_for(cfg.root, cfg.monitor) if cfg.monitor.persist else None
    path = url.split("///", 1)[-1] if url and is_sqlite(url) else None
    found = url is not None and (path is None or os.path.exists(path))
    rows = getattr(MonitorStore(url, cfg.monitor.actor_name), what)(limit) if found else []
    if not rows:
        raise MlautoError(f"no monitor {what} in {redact_url(url) if url else 'memory'}: no monitor named "
                          f"{cfg.monitor.actor_name!r} has run with root={cfg.root} and monitor.persist=true; set "
                          "root, monitor.state_url, monitor.actor_name or cluster.address to reach a running one")
    return rows


def monitor_history(cfg: Config) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The monitor's history (and status): from the running actor when connected, else from its database."""
    import ray

    actor = _running_monitor(cfg)
    if actor is not None:
        return ray.get(actor.history.remote(None)), ray.get(actor.status.remote())
    return _stored(cfg, "history", None), None


def monitor_report(cfg: Config, path: str) -> str:
    """``action=monitor_report``: the drift timeline of the monitor's history, written to ``path``."""
    from mlauto.report import monitor as report

    if cfg.cluster.address:
        runtime.connect(cfg.cluster.address, cfg.cluster.namespace)
    history, status = monitor_history(cfg)
    report.write(path, history, f"Monitor report: {cfg.monitor.actor_name}", status)
    logger.info("monitor report (%d history entries) written to %s", len(history), path)
    return path


def rollback(cfg: Config) -> dict[str, Any]:
    """Restore the champion before the last promotion."""
    previous_champion(tracking_uri(cfg), model_name(cfg))  # fails early, naming the missing alias
    return promote_version(cfg, None)  # the read of ``previous`` and the move happen under one lock


@dataclass(frozen=True)
class RetrainOnNewSnapshot:
    """``on_new_snapshot`` for the ingest scheduler: asks the running monitor actor to retrain.

    A plain picklable object (it travels to the scheduler actor); it looks the monitor up by name
    at call time, so a restarted monitor is found. Raises when none runs, so the run record says so.
    """

    actor_name: str
    namespace: str
    timeout_s: float = 30.0

    def __call__(self, snapshot: Snapshot) -> dict[str, Any]:
        import ray

        try:
            monitor = ray.get_actor(self.actor_name, namespace=self.namespace)
        except ValueError:
            raise RuntimeError(f"no monitor actor {self.actor_name!r} in namespace {self.namespace!r} to retrain; "
                               "run with the monitor stage (and cluster.address) first") from None
        reason = f"new snapshot {snapshot.fingerprint}"
        started = ray.get(monitor.trigger_retrain.remote(reason), timeout=self.timeout_s)
        return {"monitor": self.actor_name, "retrain_started": bool(started), "reason": reason}


def start_ingest_schedule(cfg: Config) -> dict[str, Any]:
    """Start (or replace) the detached ingest scheduler of ``cfg.ingest``; Ray must be connected."""
    from mlauto.data import start_schedule

    i = cfg.ingest
    callback = RetrainOnNewSnapshot(cfg.monitor.actor_name, cfg.cluster.namespace) if i.retrain_on_new_snapshot else None
    state_dir = Paths(cfg.root).schedule(i.actor_name)
    start_schedule(i.actor_name, cfg.cluster.namespace, data_source(cfg), Paths(cfg.root).snapshots, str(i.schedule),
                   state_dir=state_dir, timezone=i.timezone, keep_snapshots=i.keep_snapshots,
                   on_new_snapshot=callback)
    logger.info("ingest schedule %r started: actor %s (namespace %s), runs recorded in %s", i.schedule,
                i.actor_name, cfg.cluster.namespace, state_dir)
    return {"actor": i.actor_name, "namespace": cfg.cluster.namespace, "schedule": i.schedule,
            "timezone": i.timezone, "state_dir": state_dir, "retrain_on_new_snapshot": i.retrain_on_new_snapshot}


def manage_schedule(cfg: Config) -> dict[str, Any]:
    """``action=schedule`` / ``schedule_status`` / ``schedule_stop``.

    Without ``cluster.address`` the scheduler lives in a local Ray owned by this command, so
    ``action=schedule`` blocks until Ctrl-C; with it, the actor outlives the command.
    """
    import ray

    from mlauto.data import schedule_status, stop_schedule

    i, c = cfg.ingest, cfg.cluster
    state_dir = Paths(cfg.root).schedule(i.actor_name)
    if cfg.action == "schedule_status":
        if c.address:
            runtime.connect(c.address, c.namespace)
        return schedule_status(i.actor_name, c.namespace if ray.is_initialized() else None, state_dir)
    if cfg.action == "schedule_stop":
        if not (c.address or ray.is_initialized()):
            return {"stopped": False, "hint": "a local schedule stops with its command (Ctrl-C); give cluster.address "
                                              "to stop one running in a cluster"}
        runtime.connect(c.address, c.namespace)
        return {"stopped": stop_schedule(i.actor_name, c.namespace), "actor": i.actor_name}
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)
    try:
        check_storage(cfg)
        info = start_ingest_schedule(cfg)
        if owns_ray:
            block_until_stopped(f"{i.schedule!r} (actor {i.actor_name}, runs in {state_dir})", "ingesting on schedule %s")
            stop_schedule(i.actor_name, c.namespace)
            info["final_status"] = schedule_status(i.actor_name, None, state_dir)
        return info
    finally:
        if owns_ray:
            ray.shutdown()


def snapshots(cfg: Config) -> dict[str, Any]:
    """``action=snapshots``: the stored snapshots, newest first, logged as a table."""
    from mlauto.data import current_fingerprint, format_snapshots, list_snapshots

    directory = Paths(cfg.root).snapshots
    snaps, current = list_snapshots(directory), current_fingerprint(directory)
    logger.info("%d snapshot(s) in %s (* = current):\n%s", len(snaps), directory, format_snapshots(snaps, current))
    return {"snapshot_dir": directory, "current": current, "snapshots": [s.to_dict() for s in snaps]}


def manage(conf: Config) -> Any:
    """``action=promote version=N`` or ``action=rollback``: move the aliases; with ``cluster.address``,
    also swap the running endpoint and monitor in that cluster. ``action=events``: the monitor's
    events (from the running actor with ``cluster.address``, else from its log under ``root``).
    ``action=snapshots`` lists the stored snapshots; ``action=schedule|schedule_status|schedule_stop``
    manage scheduled ingestion. ``action=runs`` and ``action=compare runs=[A,B]`` return a table of the
    tracked runs; ``action=reproduce run_id=ID`` re-runs a trial from its record (old vs new score)."""
    if conf.action == "snapshots":
        return snapshots(conf)
    if conf.action in ("runs", "compare", "reproduce"):
        return tracked_runs(conf)
    if conf.action in ("schedule", "schedule_status", "schedule_stop"):
        return manage_schedule(conf)
    if conf.cluster.address:
        runtime.connect(conf.cluster.address, conf.cluster.namespace)
    if conf.action == "events":
        return monitor_events(conf, limit=10000)
    if conf.action == "promote":
        return promote_version(conf, str(conf.version))
    return rollback(conf)


def tracked_runs(conf: Config) -> Any:
    """``runs`` / ``compare``: a table (text); ``reproduce``: the comparison of old and new score (dict)."""
    from mlauto.track.runs import compare_runs, format_compare, format_runs, list_runs

    uri, experiment = tracking_uri(conf), conf.tracking.experiment or conf.name
    if conf.action == "runs":
        return format_runs(list_runs(uri, experiment))
    if conf.action == "compare":
        return format_compare(compare_runs(uri, list(conf.runs), experiment))
    import ray

    from mlauto.reproduce import load_record, reproduce, resolve_data

    record = load_record(uri, str(conf.run_id), experiment)  # an unknown id or lost data fail before Ray starts
    resolve_data(record, conf.root)
    c = conf.cluster
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)  # the data is read through Ray Data
    try:
        return reproduce(uri, record.run_id, conf.root, experiment, record=record)
    finally:
        if owns_ray:
            ray.shutdown()


def predict(conf: Config) -> dict[str, Any]:
    """``action=predict predict.input=PATH [version=N]``: batch scoring through Ray Data, on the local Ray
    this command starts (and stops) or on ``cluster.address``."""
    import ray

    from mlauto.serve.batch import input_files, score_file
    from mlauto.track import BundleLoader

    p, c = conf.predict, conf.cluster
    input_files(p.input)  # a missing path or model fails before Ray starts
    BundleLoader(tracking_uri(conf), model_name(conf)).resolve(conf.version)
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)
    try:
        check_storage(conf)
        result = score_file(p, tracking_uri(conf), model_name(conf), conf.version)
    finally:
        if owns_ray:
            ray.shutdown()
    return result.to_dict()


def submit_job(address: str, argv: list[str]) -> int:
    """Send the same command to a cluster as a Ray job (``cluster.address=http://head:8265``)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from mlauto.config.store import PACKAGE_DIR

    args = [a for a in argv if not a.startswith("cluster.address=")] + ["cluster.address=auto"]
    entrypoint = "python -m mlauto " + " ".join(shlex.quote(a) for a in args)
    client = JobSubmissionClient(address)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env={"working_dir": str(PACKAGE_DIR.parent), "excludes": [".venv", "runs", ".git", "outputs"]},
    )
    logger.info("submitted job %s to %s: %s", job_id, address, entrypoint)

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)  # the job's own console output, as it comes
            sys.stdout.flush()

    asyncio.run(follow())
    status = client.get_job_status(job_id)
    logger.info("job %s ended: %s", job_id, status)
    return 0 if status == JobStatus.SUCCEEDED else 1


__all__ = ["RetrainOnNewSnapshot", "RunResult", "execute", "manage", "monitor_events", "monitor_history",
           "monitor_report", "predict", "promote_version",
           "rollback", "run", "start_monitoring", "with_admin_token",
           "monitor_link", "serve_config", "serve_version", "snapshots", "start_ingest_schedule", "submit_job",
           "tracked_runs"]
