"""The monitor killed at the worst moments (``kill -9`` of its process, Ray restarts it) and its
database corrupted: nothing acknowledged is lost, every stored row and label is counted, a running
retrain is adopted or marked lost, and the monitor comes back and answers.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from functools import partial

import pytest
import ray
import sqlalchemy as sa

from tests.helpers import wait_for_actor
from mlauto import context
from mlauto.config.schema import MonitorConf
from mlauto.monitor import start_monitor, stop_monitor
from mlauto.monitor.store import MonitorStore, events, history, state, traffic

# Minutes of retrains and restarts: its own pytest process in .ci/run (chaos_full), out of the default run.
pytestmark = [pytest.mark.ray, pytest.mark.chaos, pytest.mark.chaos_full]
NS = "mlauto-tests"
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the retrain below runs in a Ray worker
LOST = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


def _rows(trained):
    cfg, result = trained
    splits = result.splits
    prep = result.final.pipeline.named_steps["prep"]
    rows = splits.val[splits.features]._append(splits.test[splits.features], ignore_index=True)
    X = prep.transform(rows)
    return cfg, X, result.final.pipeline.named_steps["model"].predict(X)


def _kill9(handle) -> int:
    pid = ray.get(handle.status.remote())["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def _stored(store: MonitorStore) -> tuple[set[str], set[str]]:
    """Row ids stored, and those labelled, read straight from the database."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(traffic.c.row_id, traffic.c.labelled).where(traffic.c.monitor == store.monitor))
        rows = rows.all()
    return {r for r, _ in rows}, {r for r, lab in rows if lab}


def test_killed_mid_ingest_and_mid_feedback_loses_and_miscounts_nothing(trained, tmp_path):
    cfg, X, preds = _rows(trained)
    name = "chaos-monitor-kill"
    handle = start_monitor(context.loader_for(cfg), MonitorConf(actor_name=name, window=10, retrain=False),
                           NS, target=cfg.data.target, state_dir=str(tmp_path))
    acked_rows, acked_labels, unsure_rows = set(), set(), set()
    stop = threading.Event()

    def traffic_loop() -> None:
        batch = 0
        while not stop.is_set():
            ids = [f"b{batch}:{i}" for i in range(10)]
            rows = X[(batch * 10) % 200 : (batch * 10) % 200 + 10]
            try:
                ray.get(handle.ingest.remote(rows, preds[: len(rows)], ids[: len(rows)]), timeout=120)
                acked_rows.update(ids[: len(rows)])
                if batch % 2:  # labels for the batch before: a feedback call between ingests
                    labelled = [f"b{batch - 1}:{i}" for i in range(5)]
                    if set(labelled) <= acked_rows:
                        ray.get(handle.feedback.remote(labelled, [0] * 5), timeout=120)
                        acked_labels.update(labelled)
            except LOST:
                unsure_rows.update(ids)  # the call may or may not have committed: either is fine
                time.sleep(0.2)
            except Exception:  # noqa: BLE001  (a label for a row whose ingest was lost: refused, nothing changed)
                pass
            batch += 1

    thread = threading.Thread(target=traffic_loop)
    thread.start()
    try:
        rng = random.Random(0)
        for _ in range(3):  # killed mid-call: ingest, feedback or the state write of either
            time.sleep(rng.uniform(1.0, 2.5))
            wait_for_actor(handle, lambda s: True, timeout=240)
            _kill9(handle)
        time.sleep(2.0)
    finally:
        stop.set()
        thread.join(timeout=120)
    try:
        status = wait_for_actor(handle, lambda s: s["restored"], timeout=240)
        stored, labelled = _stored(MonitorStore(f"sqlite:///{tmp_path / 'monitor.sqlite'}", name))
        assert acked_rows and acked_labels
        assert acked_rows <= stored and stored <= acked_rows | unsure_rows  # nothing acknowledged is lost
        assert acked_labels <= labelled
        assert status["rows_seen"] == len(stored) == status["performance"]["rows_joinable"]  # every row counted
        assert status["performance"]["labelled_rows"] == len(labelled) == status["performance"]["labels_total"]
        assert status["tests_run"] == len(stored) // 10 and status["corrupt_records"] == 0
        assert ray.get(handle.ingest.remote(X[:10], preds[:10], [f"after:{i}" for i in range(10)])) == len(stored) + 10
    finally:
        stop_monitor(name, NS)


def _began(store: MonitorStore, retrain_id: int, timeout: float = 120.0) -> None:
    """Wait until the runner has begun (it writes ``running_since`` first): before that, killing the
    monitor loses the retrain by design (its call never reached the runner)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(r["id"] == retrain_id and r["running_since"] for r in store.retrains()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"retrain {retrain_id} did not begin within {timeout:.0f} s")


def gated_retrain(gate, reason, labelled):
    """Trains until the test opens ``gate`` (a file): it outlasts a monitor restart however slow."""
    deadline = time.time() + 180
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.2)
    return {"version": "77", "promoted": False, "challenger_score": 0.5, "champion_score": 0.9, "reason": reason}


@pytest.mark.timeout(1200)  # two monitor restarts: minutes each on a loaded 2-core machine
def test_a_retrain_survives_a_monitor_restart_and_a_lost_one_is_marked_failed(trained, tmp_path):
    cfg, X, preds = _rows(trained)
    name = "chaos-monitor-retrain"
    gate = tmp_path / "gate"
    handle = start_monitor(context.loader_for(cfg), MonitorConf(actor_name=name, window=10, cooldown_s=0.0), NS,
                           partial(gated_retrain, str(gate)), target=cfg.data.target, state_dir=str(tmp_path))
    try:
        assert ray.get(handle.trigger_retrain.remote("chaos"))
        runner = ray.get(handle.status.remote())["retrain"]
        store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.sqlite'}", name)
        _began(store, runner["id"])  # the runner is training
        _kill9(handle)  # killed mid-retrain
        status = wait_for_actor(handle, lambda s: s["restored"] or s["retrain_running"], timeout=240)
        assert status["retrain_running"] and status["retrain"]["id"] == runner["id"]  # adopted, not lost
        assert "retrain_adopted" in [e["event"] for e in status["events"]]
        gate.write_text("go")
        status = wait_for_actor(handle, lambda s: s["retrains"] and not s["retrain_running"], timeout=240)
        assert status["retrains"][-1]["status"] == "finished" and status["retrains"][-1]["version"] == "77"
        kinds = [h["kind"] for h in ray.get(handle.history.remote())]
        assert kinds.count("retrain_started") == 1 and kinds.count("rejection") == 1
        with pytest.raises(ValueError):  # the finished runner was stopped
            ray.get_actor(f"{name}-retrain-{runner['id']}", namespace=NS)

        gate.unlink()
        assert ray.get(handle.trigger_retrain.remote("chaos again"))
        second = ray.get(handle.status.remote())["retrain"]
        _began(store, second["id"])
        _kill9(handle)  # the monitor dies, and so does its retrain's runner
        ray.kill(ray.get_actor(f"{name}-retrain-{second['id']}", namespace=NS), no_restart=True)
        status = wait_for_actor(handle, lambda s: len(s["retrains"]) == 2 and not s["retrain_running"], timeout=240)
        assert status["retrains"][-1]["status"] == "lost" and status["retrains"][-1]["reason"] == "chaos again"
        kinds = [h["kind"] for h in ray.get(handle.history.remote())]
        assert kinds.count("retrain_failed") == 1
    finally:
        stop_monitor(name, NS)


def test_corrupted_records_are_skipped_and_counted_and_the_monitor_answers(trained, tmp_path):
    cfg, X, preds = _rows(trained)
    name = "chaos-monitor-corrupt"
    handle = start_monitor(context.loader_for(cfg), MonitorConf(actor_name=name, window=50, retrain=False), NS,
                           target=cfg.data.target, state_dir=str(tmp_path))
    try:
        ids = [f"r:{i}" for i in range(130)]
        ray.get(handle.ingest.remote(X[:130], preds[:130], ids))
        ray.get(handle.feedback.remote(ids[:10], list(preds[:10])))
        store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.sqlite'}", name)
        with store.engine.begin() as conn:  # torn values, as a crash of a careless writer would leave
            mine = state.c.monitor == name
            conn.execute(state.update().where(mine, state.c.key == "counters").values(value='{"rows_seen": 1'))
            conn.execute(state.update().where(mine, state.c.key == "buffer").values(value='{"rows": {"b64": "@"}}'))
            conn.execute(events.update().where(events.c.monitor == name).values(body="\x00garbage"))
            conn.execute(history.update().where(history.c.monitor == name, history.c.kind == "labels")
                         .values(body="{"))
            conn.execute(traffic.update().where(traffic.c.row_id == "r:20").values(prediction="{bad"))
        ray.kill(handle, no_restart=False)
        status = wait_for_actor(handle, lambda s: s["restored"], timeout=240)
        assert status["corrupt_records"] >= 2  # the counters and the buffer: skipped, never fatal
        assert status["rows_seen"] == 130  # counters rebuilt from the rows themselves
        assert status["performance"]["labelled_rows"] == 10
        assert [e["event"] for e in ray.get(handle.events_log.remote(100))] == ["state_restored"]
        assert [h["kind"] for h in ray.get(handle.history.remote())] == ["window", "window"]
        ray.get(handle.feedback.remote(["r:20", "r:21"], [0, 0]))  # a corrupt stored prediction: label kept
        status = ray.get(handle.status.remote())
        assert status["performance"]["labelled_rows"] == 12 and status["corrupt_records"] >= 4
        assert ray.get(handle.ingest.remote(X[:50], preds[:50], [f"n:{i}" for i in range(50)])) == 180
    finally:
        stop_monitor(name, NS)
