"""The endpoint under hostile requests, over real HTTP on real Ray Serve: bodies bounded as they
stream, deep JSON, the records cap, a large request beside health checks, labels checked against the
model, the token rule off loopback, and the OpenAPI bodies built from the model."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from ray import serve

from tests.helpers import free_port
from mlauto import context
from mlauto.config.schema import MonitorConf, ServeConf
from mlauto.serve import deploy

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def hardened(trained, tmp_path_factory):
    """An app with a monitor, a 400 kB body limit and a 300-record cap, plus one configured as if it
    were bound to 0.0.0.0 (the token rule; Serve itself stays on loopback here)."""
    from mlauto.monitor import start_monitor, stop_monitor

    cfg, result = trained
    start_monitor(context.loader_for(cfg), MonitorConf(actor_name="harden-monitor", window=10), "mlauto-tests",
                  target=cfg.data.target, state_dir=str(tmp_path_factory.mktemp("harden-monitor")))
    link = {"name": "harden-monitor", "namespace": "mlauto-tests"}
    url = deploy(context.loader_for(cfg),
                 ServeConf(app_name="harden", host="127.0.0.1", port=free_port(), route_prefix="/h",
                           max_body_bytes=400_000, max_records=300, monitor_flush_s=0.2, admin_token="s3cret-token"),
                 None, link)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    exposed = deploy(context.loader_for(cfg),
                     ServeConf(app_name="harden-exposed", host="0.0.0.0", port=port, route_prefix="/x",
                               public_routes=["/predict"], admin_token="s3cret-token"), None, link)
    yield url, exposed, result
    serve.delete("harden")
    serve.delete("harden-exposed")
    stop_monitor("harden-monitor", "mlauto-tests")


def _rows(result, n):
    return result.splits.test[result.splits.features].sample(n, replace=True, random_state=0).to_dict(orient="records")


def test_chunked_body_over_the_limit_gets_413(hardened):
    url, _, result = hardened
    row = json.dumps(_rows(result, 1)[0]).encode()

    def chunks():  # no Content-Length: requests sends it chunked
        yield b"["
        for _ in range(4000):  # ~3 MB, far over 400 kB
            yield row + b","
        yield row + b"]"

    resp = requests.post(f"{url}/predict", data=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert resp.status_code == 413 and "serve.max_body_bytes" in resp.json()["detail"]
    assert requests.get(f"{url}/health", timeout=10).status_code == 200


def test_deep_json_and_the_records_cap(hardened):
    url, _, result = hardened
    deep = requests.post(f"{url}/predict", data="[" * 3000 + "]" * 3000, timeout=30)
    assert deep.status_code == 400 and "nested" in deep.text
    deep_fb = requests.post(f"{url}/feedback", data='{"request_id": "a", "labels": ' + "[" * 3000 + "]" * 3000 + "}",
                            timeout=30)
    assert deep_fb.status_code == 400
    many = requests.post(f"{url}/predict", json=_rows(result, 301), timeout=30)
    assert many.status_code == 413 and "serve.max_records" in many.json()["detail"]
    assert requests.post(f"{url}/predict", json=_rows(result, 300), timeout=30).status_code == 200


def test_health_answers_while_a_large_request_is_scored(trained):
    """A request at the default limits (5,000 records, ~4 MB) is validated and scored off the event
    loop: health checks sent meanwhile answer fast."""
    cfg, result = trained
    url = deploy(context.loader_for(cfg), ServeConf(app_name="harden-large", host="127.0.0.1", port=free_port(),
                                                    route_prefix="/big"), None)
    body = _rows(result, 5000)
    waits, done = [], threading.Event()

    def poll():
        while not done.is_set():
            start = time.perf_counter()
            requests.get(f"{url}/health", timeout=30)
            waits.append(time.perf_counter() - start)
            time.sleep(0.02)

    try:
        poller = threading.Thread(target=poll)
        poller.start()
        start = time.perf_counter()
        resp = requests.post(f"{url}/predict", json=body, timeout=120)
        took = time.perf_counter() - start
        done.set()
        poller.join()
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 5000
        assert len(waits) >= 3 and max(waits) < max(1.0, took / 2), (took, sorted(waits)[-5:])
    finally:
        serve.delete("harden-large")


def test_feedback_labels_are_checked_and_unseen_classes_quarantined(hardened):
    url, _, result = hardened
    rows = _rows(result, 3)
    pred = requests.post(f"{url}/predict", json=rows, timeout=30).json()
    rid = pred["request_id"]
    known = sorted({str(c) for c in result.final.pipeline.classes_})
    wrong = requests.post(f"{url}/feedback", json={"request_id": rid, "labels": [1, 0.5, [1]]}, timeout=30)
    assert wrong.status_code == 422, wrong.text
    assert [d["loc"] for d in wrong.json()["detail"]] == [["body", "labels", 1], ["body", "labels", 2]]
    ok = requests.post(f"{url}/feedback", json={"request_id": rid, "labels": [pred["predictions"][0], 1, 99]},
                       timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["unseen_class"] == 1 and ok.json()["accepted"] == 2, known
    drift = requests.get(f"{url}/drift", timeout=30).json()
    assert drift["performance"]["labels_quarantined"] == 1 and drift["performance"]["labelled_rows"] == 2
    events = requests.get(f"{url}/events", params={"limit": 20}, timeout=30).json()["events"]
    held = [e for e in events if e["event"] == "label_quarantined"]
    assert held and held[-1]["labels"] == [99] and "new class" in held[-1]["reason"]
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert "mlauto_labels_unseen_class_total 1.0" in metrics
    assert requests.post(f"{url}/feedback", json={"request_id": "x" * 100, "label": 1}, timeout=30).status_code == 422
    too_many = requests.post(f"{url}/feedback", json={"request_id": rid, "labels": [1] * 301}, timeout=30)
    assert too_many.status_code == 413 and "serve.max_records" in too_many.json()["detail"]


def test_metric_labels_are_route_templates(hardened):
    url, _, _ = hardened
    for i in range(5):
        requests.get(f"{url}/no/such/route/{i}", timeout=30)
    text = requests.get(f"{url}/metrics", timeout=30).text
    assert "/no/such" not in text and 'route="unmatched"' in text
    assert 'route="/h/predict"' in text


def test_off_loopback_every_route_but_health_needs_the_token(hardened):
    _, url, result = hardened
    auth = {"Authorization": "Bearer s3cret-token"}
    assert requests.get(f"{url}/health", timeout=30).status_code == 200
    assert requests.post(f"{url}/predict", json=_rows(result, 1), timeout=30).status_code == 200  # public_routes
    for route in ("/model", "/drift", "/events", "/metrics", "/docs", "/openapi.json"):
        assert requests.get(f"{url}{route}", timeout=30).status_code == 401, route
        assert requests.get(f"{url}{route}", headers=auth, timeout=30).status_code == 200, route
    assert requests.post(f"{url}/feedback", json={"request_id": "a", "label": 1}, timeout=30).status_code == 401
    assert requests.post(f"{url}/admin/retrain", headers={"Authorization": "Bearer wrong"},
                         timeout=30).status_code == 403


def test_openapi_predict_body_is_built_from_the_model(hardened):
    url, _, result = hardened
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = spec["components"]["schemas"]["Record"]
    features = list(result.splits.features)
    assert sorted(record["properties"]) == sorted(features) and sorted(record["required"]) == sorted(features)
    assert record["additionalProperties"] is False
    assert body["schema"]["anyOf"][1]["maxItems"] == 300
    assert set(body["example"]) == set(features)
    for name in features:
        prop = record["properties"][name]
        assert "x-training-min" in prop or "x-training-categories" in prop
    assert requests.post(f"{url}/predict", json=body["example"], timeout=30).status_code == 200  # the example works
    fb = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert fb["properties"]["label"]["x-known-classes"]
    assert spec["servers"] == [{"url": "/h"}]
    assert "swagger" in requests.get(f"{url}/docs", timeout=30).text.lower()
