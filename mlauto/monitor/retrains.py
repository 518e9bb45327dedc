"""Retrains that outlive the monitor: each runs in a detached Ray actor (a *runner*) whose name, reason
and start time are in the store, and which writes its own outcome there.

So a monitor that died while a retrain ran (killed, restarted, moved to another node) reconciles on
start: a runner still working is adopted (its outcome is read from the store when it lands), a
finished one's result is recorded, and a runner that is gone without an outcome is marked failed
(``lost``). A model version a lost retrain registered but never decided on is tagged
``mlauto.decision=abandoned`` (it is not the champion: promotion is the retrain's last step).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Callable

import ray

from mlauto.monitor.store import MonitorStore, Retention

logger = logging.getLogger(__name__)

RUNNER_START_S = 120.0  # a runner that has not begun by then (its caller died first) is lost
# The store's bookkeeping fields of a retrain record, beside the retrain's own result.
RECORD_KEYS = frozenset({"id", "status", "handled", "reason", "runner", "started", "running_since", "finished", "time"})


def runner_name(monitor: str, retrain_id: int) -> str:
    return f"{monitor}-retrain-{retrain_id}"


class RetrainRunner:
    """A detached actor that runs one retrain and writes the outcome to the monitor's store."""

    def run(self, retrain_fn: Callable[[str, Any], dict[str, Any]], reason: str, labelled: Any,
            store: tuple[str | None, str], retrain_id: int) -> dict[str, Any]:
        url, monitor = store
        db = MonitorStore(url, monitor, Retention()) if url else None
        if db is not None:
            with db.transaction() as conn:
                db.update_retrain(conn, retrain_id, running_since=time.time())
        try:
            result = retrain_fn(reason, labelled)
        except BaseException as exc:
            if db is not None:
                with db.transaction() as conn:
                    db.update_retrain(conn, retrain_id, status="failed", finished=time.time(),
                                      body={"error": f"{type(exc).__name__}: {exc}"[:2000],
                                            "traceback": traceback.format_exc()[-4000:]})
            raise
        if db is not None:
            with db.transaction() as conn:
                db.update_retrain(conn, retrain_id, status="finished", finished=time.time(), body=result)
        return result


def start_runner(monitor: str, namespace: str | None, retrain_id: int, retrain_fn: Any, reason: str,
                 labelled: Any, url: str | None) -> tuple[Any, Any]:
    """The runner actor and the ref of its ``run`` call. Detached when the state persists (it must outlive
    the monitor); otherwise owned by the monitor, as a task would be."""
    options: dict[str, Any] = {"name": runner_name(monitor, retrain_id), "num_cpus": 0, "max_restarts": 0}
    if url:
        options.update(lifetime="detached", namespace=namespace)
    actor = ray.remote(RetrainRunner).options(**options).remote()
    return actor, actor.run.remote(retrain_fn, reason, labelled, (url, monitor), retrain_id)


def never_began(record: dict[str, Any]) -> bool:
    """A runner that has not begun ``RUNNER_START_S`` after it was started never will: the monitor that
    started it died before its call reached it."""
    return record["running_since"] is None and time.time() - record["started"] > RUNNER_START_S


def find_runner(name: str, namespace: str | None) -> Any | None:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def kill_runner(name: str | None, namespace: str | None) -> None:
    if name and (actor := find_runner(name, namespace)) is not None:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001  (already gone)
            pass


def kill_runners(monitor: str, namespace: str) -> int:
    """Stop every runner of ``monitor`` (a monitor stopped for good leaves no retrain behind)."""
    killed = 0
    for item in ray.util.list_named_actors(all_namespaces=True):
        name = item["name"] if isinstance(item, dict) else item
        space = item.get("namespace") if isinstance(item, dict) else namespace
        if space == namespace and name.startswith(f"{monitor}-retrain-"):
            kill_runner(name, namespace)
            killed += 1
    return killed


def resolve_undecided(tracking_uri: str | None, model_name: str | None, champion: str | None,
                      since: float | None, limit: int = 20) -> list[str]:
    """Tag versions a failed or lost retrain registered (run tag ``mlauto.trigger``, registered after the
    retrain started at ``since``) without a decision, among the newest ``limit``, as ``abandoned``; the
    champion is never touched. Returns the versions tagged; a tracking error leaves them as they are."""
    if not tracking_uri or not model_name or since is None:
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except Exception as exc:  # noqa: BLE001
        logger.warning("undecided versions of %s not resolved: %s", model_name, exc)
        return []
    tagged = []
    for mv in sorted(versions, key=lambda v: int(v.version))[-limit:]:
        if (str(mv.version) == str(champion) or "mlauto.decision" in (mv.tags or {})
                or (mv.creation_timestamp or 0) / 1000.0 < since):
            continue
        try:
            trigger = client.get_run(mv.run_id).data.tags.get("mlauto.trigger")
        except Exception:  # noqa: BLE001  (a deleted run: nothing to decide)
            continue
        if trigger is None:
            continue
        client.set_model_version_tag(model_name, mv.version, "mlauto.decision", "abandoned")
        client.set_model_version_tag(model_name, mv.version, "mlauto.decision_reason",
                                     "its retrain was lost (monitor restart) before a decision; not promoted")
        tagged.append(str(mv.version))
    return tagged
