"""Chaos on the closed loop, on real Ray, Serve, MLflow and HTTP: a model swap to another feature
width under load, an operator racing a retrain, retrains failing late, a poisoned label before a
retrain, and a large request among small ones. Each case asserts that no request got a 5xx and that
the monitor-delivery counters add up (every served row acknowledged or dropped with a reason).

One model is trained for the module (its own root, so no other test's champion moves); retrains run
on the smallest budget (``monitor.retrain_num_samples=1``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from functools import partial

import mlflow
import pytest
import ray
import requests
from mlflow.tracking import MlflowClient

from mlauto import context, train
from mlauto.config.schema import ServeConf
from mlauto.retrain import promote_version, retrain
from mlauto.serve import deploy
from mlauto.serve.sender import MONITOR_ERROR
from mlauto.track import CHAMPION, promote
from tests.helpers import RequestLoop, free_port, make_config, wait_for_actor

# Minutes of retrains and restarts: its own pytest process in .ci/run (chaos_full), out of the default run.
pytestmark = [pytest.mark.ray, pytest.mark.chaos, pytest.mark.chaos_full]

NS = "mlauto-tests"
APP = "chaosloop"
TOKEN = "chaos-loop-admin"


def retrain_then_fail(cfg, reason, labelled):
    """A retrain that fails after it registered its version (and, if it was better, moved the alias)."""
    out = retrain(cfg, reason, labelled)
    raise RuntimeError(f"injected failure after version {out['version']} was {out['decision']}")


@pytest.fixture(scope="module")
def loop(ray_session, tmp_path_factory):
    from mlauto.monitor import stop_monitor

    root = tmp_path_factory.mktemp("chaosloop")
    # a huge window: no drift-triggered retrains (a repeated record drifts); each case starts its own
    cfg = make_config([f"root={root}", "models=fast", "tune.num_samples=2", "name=chaosloop",
                       "monitor.retrain_num_samples=1", "monitor.actor_name=chaosloop-monitor",
                       f"cluster.namespace={NS}", "monitor.cooldown_s=0", "monitor.window=100000",
                       f"serve.app_name={APP}", "monitor.persist=false"])
    result = train.train(cfg, {})
    uri, name = context.tracking_uri(cfg), context.model_name(cfg)
    promote(uri, name, result.tracked.version)
    conf = ServeConf(app_name=APP, host="127.0.0.1", port=free_port(), route_prefix=f"/{APP}", poll_s=0.3,
                     monitor_flush_s=0.1, admin_token=TOKEN, max_records=20_000, max_body_bytes=32 << 20,
                     monitor_buffer=50_000)
    _monitor(cfg)
    url = deploy(context.loader_for(cfg), conf, None, {"name": cfg.monitor.actor_name, "namespace": NS})
    record = result.splits.test[result.splits.features].head(1).to_dict(orient="records")[0]
    yield cfg, result, url, record
    from ray import serve

    serve.delete(APP)
    stop_monitor(cfg.monitor.actor_name, NS)


def _monitor(cfg, retrain_fn=None):
    from mlauto.monitor import start_monitor

    return start_monitor(context.loader_for(cfg), cfg.monitor, NS, retrain_fn, target=cfg.data.target)


def _with_margin(cfg, margin: float):
    return dataclasses.replace(cfg, monitor=dataclasses.replace(cfg.monitor, promote_margin=margin))


def _champion(cfg) -> str:
    return str(MlflowClient(context.tracking_uri(cfg)).get_model_version_by_alias(context.model_name(cfg),
                                                                                   CHAMPION).version)


def _copy_version(cfg, version: str) -> str:
    """Another registered version of the same model (as an operator's candidate)."""
    uri = context.tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    source = MlflowClient(uri).get_model_version(context.model_name(cfg), version).source
    return str(mlflow.register_model(source, context.model_name(cfg)).version)


def _wait_version(url: str, version: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while requests.get(f"{url}/health", timeout=30).json()["model_version"] != version:
        assert time.time() < deadline, f"endpoint still not on version {version}"
        time.sleep(0.2)


def _counts(url: str, timeout: float = 30) -> dict:
    """The replica's sender counters once nothing is pending or in flight; checks that they add up."""
    deadline = time.time() + timeout
    while True:
        c = requests.get(f"{url}/drift", timeout=30).json()["sender"]
        if c["pending"] == 0 and c["in_flight"] == 0:
            break
        assert time.time() < deadline, c
        time.sleep(0.2)
    assert c["received"] == c["acknowledged"] + c["dropped_total"], c
    assert c["sent"] == c["acknowledged"] + c["dropped"].get(MONITOR_ERROR, 0), c
    assert c["errors"] == 0, c
    return c


def _no_5xx(outcomes: list) -> None:
    bad = [o for o in outcomes if not (isinstance(o, int) and o < 500)]
    assert not bad, {o: bad.count(o) for o in set(map(str, bad))}


def _tree(folder: str) -> set[str]:
    import os

    return {os.path.join(b, n) for b, dirs, files in os.walk(folder) for n in (*dirs, *files)}


def _wait_search_started(cfg, before: set[str], timeout: float = 300) -> None:
    """Until the retrain's search writes under ray_results: by then it has read its champion."""
    import os

    folder = os.path.join(cfg.root, "ray_results")
    deadline = time.time() + timeout
    while not _tree(folder) - before:
        assert time.time() < deadline, "the retrain's search never started"
        time.sleep(0.2)


def _wait_retrain(handle, timeout: float = 300) -> dict:
    status = wait_for_actor(handle, lambda s: not s["retrain_running"] and s["retrains"], timeout=timeout)
    return status["retrains"][-1]


def test_swap_to_another_feature_width_under_16_clients(loop):
    """A champion of another feature width (feature selection keeps 3 columns) swapped in under 16
    clients with the monitor attached: every answer 2xx, every served row counted."""
    cfg, result, url, record = loop
    _monitor(cfg)
    narrow_cfg = make_config([f"root={cfg.root}", "models=fast", "tune.num_samples=1", "name=chaosloop",
                              "features.selection=[{method:mutual_info,k:3}]"])
    narrow = train.train(narrow_cfg, {}).tracked.version
    before = _counts(url)
    wide = _champion(cfg)
    with RequestLoop(f"{url}/predict", record, clients=16) as clients:
        clients.wait_for(150)
        promote_version(cfg, narrow)  # the operator: alias moved, monitor reloaded
        _wait_version(url, narrow)
        n = len(clients.outcomes)
        clients.wait_for(n + 150)
        promote_version(cfg, wide)  # and back, while rows of both widths are in the buffer
        _wait_version(url, wide)
        n = len(clients.outcomes)
        clients.wait_for(n + 100)
    assert set(clients.outcomes) == {200}, clients.failures()
    after = _counts(url)
    assert after["received"] - before["received"] == len(clients.outcomes)  # 0 uncounted rows
    status = ray.get(ray.get_actor(cfg.monitor.actor_name, namespace=NS).status.remote())
    assert status["model_version"] == wide


def test_operator_promote_and_rollback_beat_a_running_retrain(loop):
    cfg, result, url, record = loop
    keen = _with_margin(cfg, -1.0)  # this retrain's challenger always counts as better
    handle = _monitor(keen, partial(retrain, keen))
    start = _champion(cfg)
    other = _copy_version(cfg, start)
    import os

    before = _tree(os.path.join(cfg.root, "ray_results"))
    with RequestLoop(f"{url}/predict", record, clients=4) as clients:
        resp = requests.post(f"{url}/admin/retrain", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code == 202, resp.text
        _wait_search_started(cfg, before)  # the retrain has read its champion and is training
        promote_version(cfg, other)  # while it runs: the operator promotes...
        back = requests.post(f"{url}/admin/rollback", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert back.status_code == 200 and back.json()["champion"] == start, back.text  # ...and rolls back (route)
        outcome = _wait_retrain(handle)
    _no_5xx(clients.outcomes)
    assert outcome["status"] == "finished", outcome
    assert outcome["decision"] == "superseded" and not outcome["promoted"], outcome
    assert _champion(cfg) == start  # the operator's rollback stands
    tags = MlflowClient(context.tracking_uri(cfg)).get_model_version(context.model_name(cfg),
                                                                       outcome["version"]).tags
    assert tags["mlauto.decision"] == "superseded" and "again" in tags["mlauto.superseded"]
    _wait_version(url, start)
    assert ray.get(handle.status.remote())["model_version"] == start
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.post(f"{url}/admin/promote", params={"version": other}, timeout=30).status_code == 401
    assert requests.post(f"{url}/admin/promote", params={"version": "999"}, headers=auth, timeout=60).status_code == 404
    assert requests.post(f"{url}/admin/promote", params={"version": "x"}, headers=auth, timeout=30).status_code == 422
    _counts(url)


@pytest.mark.parametrize("margin, moves", [(1e9, False), (-1.0, True)], ids=["after-registration", "after-alias-moved"])
def test_retrain_failing_late_leaves_the_champion_serving(loop, margin, moves):
    cfg, result, url, record = loop
    failing = _with_margin(cfg, margin)
    handle = _monitor(failing, partial(retrain_then_fail, failing))
    before = _champion(cfg)
    with RequestLoop(f"{url}/predict", record, clients=4) as clients:
        assert ray.get(handle.trigger_retrain.remote("chaos: fails late"))
        outcome = _wait_retrain(handle)
        champion = _champion(cfg)
        _wait_version(url, champion)  # the endpoint serves whatever the alias says
    assert outcome["status"] == "failed" and "injected failure" in outcome["error"], outcome
    assert (champion != before) == moves
    assert set(clients.outcomes) == {200}, clients.failures()
    for _ in range(20):  # and goes on serving it
        answer = requests.post(f"{url}/predict", json=record, timeout=30)
        assert answer.status_code == 200 and answer.json()["model"]["version"] == champion
    wait_for_actor(handle, lambda s: s["model_version"] == champion, timeout=30)  # the monitor follows the alias
    _counts(url)
    if moves:
        promote_version(cfg, before)  # the next case starts from the first champion


def test_poisoned_labels_then_a_retrain(loop):
    """Wrong-typed labels are refused (422), a label of a class never seen is quarantined, and the
    retrain that follows learns from the rest without failing."""
    cfg, result, url, record = loop
    handle = _monitor(cfg, partial(retrain, _with_margin(cfg, 1e9)))
    rows = result.splits.test[result.splits.features].head(40).to_dict(orient="records")
    labels = result.splits.test[result.splits.target].head(40).tolist()
    rid = requests.post(f"{url}/predict", json=rows, timeout=30).json()["request_id"]
    poisoned = [*labels[:-2], {"class": 1}, 1.5]
    bad = requests.post(f"{url}/feedback", json={"request_id": rid, "labels": poisoned}, timeout=30)
    assert bad.status_code == 422 and {d["loc"][-1] for d in bad.json()["detail"]} == {38, 39}, bad.text
    unseen = [*labels[:-1], 7 if isinstance(labels[0], int) else "a-class-never-seen"]
    ok = requests.post(f"{url}/feedback", json={"request_id": rid, "labels": unseen}, timeout=60)
    assert ok.status_code == 200 and ok.json()["unseen_class"] == 1, ok.text
    assert ray.get(handle.trigger_retrain.remote("chaos: after poisoned labels"))
    outcome = _wait_retrain(handle)
    assert outcome["status"] == "finished" and outcome["production_rows"] == 39, outcome
    assert outcome["decision"] == "rejected"
    _counts(url)


def test_large_request_among_8_small_clients(loop):
    """16,000 records in one call while 8 clients send one each: no 5xx, the replica is not restarted,
    and the large request's rows reach the monitor in chunks instead of being dropped whole."""
    cfg, result, url, record = loop
    _monitor(cfg)
    replica = requests.get(f"{url}/health", timeout=30).json()["replica"]
    before = _counts(url)
    big = [record] * 16_000
    answer: dict = {}

    def large() -> None:
        answer["resp"] = requests.post(f"{url}/predict", json=big, timeout=300)

    with RequestLoop(f"{url}/predict", record, clients=8) as clients:
        clients.wait_for(50)
        thread = threading.Thread(target=large)
        thread.start()
        thread.join(300)
        n = len(clients.outcomes)
        clients.wait_for(n + 50)
    assert answer["resp"].status_code == 200 and len(answer["resp"].json()["predictions"]) == 16_000
    assert set(clients.outcomes) == {200}, clients.failures()
    assert requests.get(f"{url}/health", timeout=30).json()["replica"] == replica
    after = _counts(url)
    assert after["received"] - before["received"] == 16_000 + len(clients.outcomes)
    assert after["acknowledged"] - before["acknowledged"] == 16_000 + len(clients.outcomes), after


def _files_holding(folder, secret: bytes, skip: set) -> list[str]:
    import os

    found = []
    for base, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(base, f)
            if path in skip or not os.path.isfile(path) or os.path.islink(path):
                continue
            try:
                with open(path, "rb") as fh:
                    if secret in fh.read():
                        found.append(path)
            except OSError:
                continue
    return found


def test_generated_token_is_in_no_file(loop, tmp_path):
    """A run that generates its admin token, serves, monitors and retrains (through /admin/retrain):
    the whole token is in no file under root, the run folder or Ray's session logs, except the
    mode-600 ``serve_config.yaml`` written on request."""
    import os

    from mlauto import ops
    from mlauto.monitor import stop_monitor
    from ray import serve

    cfg, result, _, record = loop
    run_cfg = make_config([f"root={cfg.root}", f"name={cfg.name}", "stages=[serve,monitor]", "serve.blocking=false",
                           f"serve.port={free_port()}", f"cluster.namespace={NS}", "serve.app_name=tokenleak",
                           "serve.route_prefix=/tokenleak", "monitor.actor_name=tokenleak-monitor",
                           "monitor.retrain_num_samples=1", "monitor.promote_margin=1000.0"])
    assert run_cfg.serve.admin_token is None
    run = ops.execute(run_cfg, str(tmp_path / "run"))
    token = run.config.serve.admin_token
    try:
        url = run.summary["endpoint"]
        assert token and len(token) >= 24
        for _ in range(5):
            assert requests.post(f"{url}/predict", json=record, timeout=30).status_code == 200
        assert requests.post(f"{url}/admin/retrain", timeout=30).status_code == 401
        started = requests.post(f"{url}/admin/retrain", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert started.status_code == 202, started.text
        handle = ray.get_actor("tokenleak-monitor", namespace=NS)
        outcome = _wait_retrain(handle)
        assert outcome["status"] == "finished", outcome
        config_file = str(tmp_path / "run" / "serve_config.yaml")
        ops.serve_config(run.config, config_file)
        assert os.stat(config_file).st_mode & 0o777 == 0o600
    finally:
        serve.delete("tokenleak")
        stop_monitor("tokenleak-monitor", NS)
    session = ray._private.worker._global_node.get_session_dir_path()
    leaks = [p for folder in (cfg.root, str(tmp_path / "run"), os.path.join(session, "logs"))
             for p in _files_holding(folder, token.encode(), {config_file})]
    assert not leaks, leaks
