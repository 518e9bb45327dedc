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

from mlauto.monitor.store import MonitorStore, Retention, retrains as retrains_table

logger = logging.getLogger(__name__)

RUNNER_START_S = 120.0  # a runner that has not begun by then (its caller died first) is lost
# The store's bookkeeping fields of a retrain record, beside the retrain's own result.
RECORD_KEYS = frozenset({"id", "status", "handled", "reason", "runner", "started", "running_since", "finished", "time"})


def error_text(exc: BaseException) -> str:
    """``Type: message`` of the error a retrain raised; a Ray task error is unwrapped to its cause, whose
    message says what to fix (the wrapper's text is a colored traceback that buries it)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    exc = cause if isinstance(cause, BaseException) else exc
    return f"{type(exc).__name__}: {exc}"[:2000]


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
                                      body={"error": error_text(exc),
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
    options: dict[str, Any] = {"name": runner_name(monitor, retrain_id), "num_cpus": 0, "max_restarts": 0,
                               **getattr(retrain_fn, "ray_options", {})}  # placement, where the launcher sets it
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


class Retraining:
    """The monitor's retrain control (a part of :class:`mlauto.monitor.actor.Monitor`, kept here to keep
    that module small): start one runner at a time, poll it, record its outcome once, and reconcile
    with the store on start. Uses the monitor's store, events, history and loader."""

    retrain_fn: Any
    _retrain: dict[str, Any] | None

    def _want_retrain(self, reason: str) -> None:
        if self._wanted is None:
            self._wanted = reason

    def _maybe_retrain(self, reason: str) -> None:
        if self.retrain_fn is None or self._retrain is not None:
            return  # retraining off, or one at a time
        if time.time() - self._retrain_started < self.cooldown_s:
            return
        now = self._retrain_started = time.time()
        labelled = self.traffic.labelled(self.target)
        ids: list[int] = []

        def record(conn: Any) -> None:
            ids.append(self.store.add_retrain(conn, reason, None, now))
            self.store.update_retrain(conn, ids[0], runner=runner_name(self.name, ids[0]))

        self._event("retrain_started", reason=reason, labelled_rows=len(labelled))
        self._history("retrain_started", reason=reason, labelled_rows=len(labelled))
        self._commit(record)  # the record exists before the runner that writes into it
        actor, ref = start_runner(self.name, self.namespace, ids[0], self.retrain_fn, reason, labelled,
                                  self.state_url)
        self._retrain = {"id": ids[0], "runner": runner_name(self.name, ids[0]), "reason": reason,
                         "ref": ref, "actor": actor, "started": now, "checked": now}

    def _poll_retrain(self) -> None:
        r = self._retrain
        if r is None:
            return
        if r["ref"] is not None:
            ready, _ = ray.wait([r["ref"]], timeout=0)
            if not ready:
                return
            try:
                status, result = "finished", ray.get(r["ref"])
            except Exception as exc:  # the live model keeps serving; only the record changes
                status, result = "failed", {"error": error_text(exc)}
        else:  # adopted after a restart: the runner writes its outcome to the store
            if time.time() - r["checked"] < 1.0:
                return
            r["checked"] = time.time()
            rows = self.store.retrains(1, retrains_table.c.id == r["id"])
            if rows and rows[0]["status"] != "running":
                status, result = rows[0]["status"], {k: v for k, v in rows[0].items() if k not in RECORD_KEYS}
            elif find_runner(r["runner"], self.namespace) is None:
                status, result = "lost", {"error": "the retrain's runner is gone (its node or worker died)"}
            elif rows and never_began(rows[0]):
                status, result = "lost", {"error": "the retrain's runner never began (its monitor died first)"}
            else:
                return
        self._retrain = None
        self._outcome(r, status, result)
        kill_runner(r["runner"], self.namespace)

    def _outcome(self, r: dict[str, Any], status: str, result: dict[str, Any]) -> None:
        """Record a retrain's outcome (once: the record is marked handled in the same transaction)."""
        now = time.time()
        self.retrains.append({**result, "status": status, "reason": r["reason"], "time": now})
        self.retrains = self.retrains[-self.keep.retrains :]
        if status != "finished":
            self._event("retrain_failed", reason=r["reason"], error=result.get("error"), status=status)
            self._history("retrain_failed", reason=r["reason"], error=result.get("error"))
            abandoned = resolve_undecided(getattr(self.loader, "uri", None),
                                                  getattr(self.loader, "model_name", None), self.model_version,
                                                  since=r.get("started"))
            if abandoned:
                self._event("versions_abandoned", versions=abandoned)
        else:
            self._event("retrain_finished", **result)
            kind = "promotion" if result.get("promoted") else "rejection"
            evidence = {k: result.get(k) for k in ("version", "challenger_score", "champion_score")}
            self._event(kind, **evidence)
            self._history(kind, **evidence, reason=result.get("superseded") or result.get("reason", r["reason"]))
        self._follow_champion(bool(result.get("promoted")))

        def mark(conn: Any) -> None:
            self.store.update_retrain(conn, r["id"], status=status, handled=True, finished=now, body=result)

        self._commit(mark)

    def _follow_champion(self, promoted: bool) -> None:
        """After a retrain (finished or failed): watch whatever the champion alias points to now, not
        what the retrain produced (an operator may have moved it since, or it moved before a failure)."""
        resolve = getattr(self.loader, "resolve", None)
        try:
            moved = resolve(None) != self.model_version if resolve is not None else promoted
        except Exception as exc:  # noqa: BLE001  (the registry is unreachable: keep watching what we have)
            logger.warning("could not read the champion alias after a retrain: %s", exc)
            moved = promoted
        if moved:
            self._switch(None)

    def _reconcile(self) -> None:
        """On start: adopt a retrain still running, record one that ended while no monitor watched, and
        mark one whose runner is gone as lost."""
        for r in self.store.retrains(None, retrains_table.c.handled.is_(False)):
            record = {"id": r["id"], "runner": r["runner"], "reason": r["reason"], "ref": None,
                      "started": r["started"], "checked": 0.0}
            if r["status"] != "running":
                self._outcome(record, r["status"], {k: v for k, v in r.items() if k not in RECORD_KEYS})
                continue
            actor = find_runner(r["runner"], self.namespace)
            if actor is not None and not never_began(r) and self._retrain is None:
                self._retrain = record
                self._retrain_started = r["started"]
                self._event("retrain_adopted", reason=r["reason"], runner=r["runner"])
                continue
            kill_runner(r["runner"], self.namespace)
            self._outcome(record, "lost", {"error": "the monitor restarted and the retrain's runner is gone"})

    def _schedule_loop(self) -> None:
        """Wake at each cron time and ask the actor (through its own queue, so calls never overlap)."""
        from croniter import croniter

        handle = ray.get_runtime_context().current_actor
        times = croniter(self.retrain_schedule, time.time())
        while True:
            due = times.get_next(float)
            if self._stop.wait(max(0.0, due - time.time())):
                return
            handle.scheduled_retrain.remote()

    def scheduled_retrain(self) -> bool:
        """The ``retrain_schedule`` fired: retrain unless one runs or the cooldown holds."""
        self._poll_retrain()
        before = self._retrain
        self._maybe_retrain(f"schedule {self.retrain_schedule}")
        started = self._retrain is not None and self._retrain is not before
        if not started:
            self._event("schedule_skipped", schedule=self.retrain_schedule,
                        why="a retrain is running" if before is not None else "cooldown or retraining off")
            self._commit()
        return started

    def trigger_retrain(self, reason: str = "manual") -> bool:
        """Start a retrain now (cooldown ignored); False when retraining is off or one is running."""
        self._poll_retrain()
        if self.retrain_fn is None or self._retrain is not None:
            return False
        self._retrain_started = -float("inf")
        self._maybe_retrain(reason)
        return True

