"""The endpoint over real HTTP: predictions, schema, validation errors."""

import numpy as np
import pytest
import requests
from ray import serve

from conftest import free_port
from mlauto import pipeline
from mlauto.serve import deploy


@pytest.fixture(scope="module")
def endpoint(trained):
    cfg, result = trained
    url = deploy(pipeline.loader_for(cfg), None, app_name="test-app", host="127.0.0.1",  # follows the champion
                 port=free_port(), route_prefix="/", poll_s=0.5)
    yield url, cfg, result
    serve.shutdown()


def _records(frame):
    return frame.to_dict(orient="records")


def test_predict_matches_the_trained_pipeline(endpoint):
    url, cfg, result = endpoint
    rows = result.splits.test[result.splits.features].head(7)
    resp = requests.post(f"{url}/predict", json=_records(rows), timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    expected = result.final.pipeline.predict(rows).tolist()
    assert body["predictions"] == expected  # serving and training give the same answer
    proba = result.final.pipeline.predict_proba(rows)
    got = np.array([[p[str(c)] for c in result.final.pipeline.classes_] for p in body["probabilities"]])
    assert np.allclose(got, proba)
    assert len(body["request_id"]) == 32 and body["model"]["version"] == result.tracked.version


def test_concurrent_requests_batched_together_get_their_own_answers(endpoint):
    """@serve.batch scores concurrent requests in one pass; each must get back exactly its rows."""
    from concurrent.futures import ThreadPoolExecutor

    url, _, result = endpoint
    test = result.splits.test[result.splits.features]
    chunks = [test.iloc[i : i + 1 + i % 3] for i in range(0, 48, 2)]  # 24 requests of 1-3 rows

    def post(chunk):
        return requests.post(f"{url}/predict", json=_records(chunk), timeout=30).json()

    with ThreadPoolExecutor(12) as pool:
        bodies = list(pool.map(post, chunks))
    for chunk, body in zip(chunks, bodies):
        assert body["predictions"] == result.final.pipeline.predict(chunk).tolist()
        got = np.array([[p[str(c)] for c in result.final.pipeline.classes_] for p in body["probabilities"]])
        assert np.allclose(got, result.final.pipeline.predict_proba(chunk))
    assert len({b["request_id"] for b in bodies}) == len(chunks)


def test_one_record_is_accepted(endpoint):
    url, _, result = endpoint
    row = _records(result.splits.test[result.splits.features].head(1))[0]
    resp = requests.post(f"{url}/predict", json=row, timeout=30)
    assert resp.status_code == 200 and len(resp.json()["predictions"]) == 1


@pytest.mark.parametrize("breakage,field", [("drop", "mean_radius"), ("string", "mean_texture"), ("extra", "colour")])
def test_bad_fields_get_422_naming_them(endpoint, breakage, field):
    url, _, result = endpoint
    row = _records(result.splits.test[result.splits.features].head(1))[0]
    if breakage == "drop":
        del row[field]
    elif breakage == "string":
        row[field] = "twelve"
    else:
        row[field] = "red"
    resp = requests.post(f"{url}/predict", json=[row], timeout=30)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert [d["field"] for d in detail] == [field] and detail[0]["loc"] == ["body", 0, field]


def test_null_values_are_imputed_like_training(endpoint):
    url, _, result = endpoint
    rows = result.splits.test[result.splits.features].head(2).copy()
    rows.iloc[0, :3] = None
    resp = requests.post(f"{url}/predict", json=rows.astype(object).where(rows.notna(), None).to_dict("records"),
                         timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == result.final.pipeline.predict(rows.astype(float)).tolist()


def test_malformed_bodies_are_refused(endpoint):
    url, _, _ = endpoint
    assert requests.post(f"{url}/predict", data="{not json", timeout=30).status_code == 400
    assert requests.post(f"{url}/predict", json=[], timeout=30).status_code == 422
    assert requests.post(f"{url}/predict", json=3, timeout=30).status_code == 422


def test_health_model_and_drift_routes(endpoint):
    url, cfg, result = endpoint
    assert requests.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    info = requests.get(f"{url}/model", timeout=30).json()
    assert info["version"] == result.tracked.version and info["name"] == pipeline.model_name(cfg)
    assert info["data_fingerprint"] == result.snapshot.fingerprint
    assert [c["name"] for c in info["schema"]] == result.splits.features
    assert info["test_metrics"][cfg.tune.metric] == pytest.approx(result.final.test_metrics[cfg.tune.metric])
    assert requests.get(f"{url}/drift", timeout=30).status_code == 404  # deployed without a monitor
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200


def test_swap_under_load_is_in_place_and_drops_nothing(endpoint):
    """Promoting another version under a request loop: the replica swaps the model in place, no
    request fails, and a rollback swaps it back."""
    import threading
    import time

    import mlflow
    from mlflow.tracking import MlflowClient

    from mlauto.track import promote

    url, cfg, result = endpoint
    uri = pipeline.tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    source = MlflowClient(uri).get_model_version(pipeline.model_name(cfg), result.tracked.version).source
    new = mlflow.register_model(source, pipeline.model_name(cfg)).version
    row = _records(result.splits.test[result.splits.features].head(1))[0]
    outcomes: list[int | str] = []
    stop = threading.Event()

    def hammer():
        session = requests.Session()
        while not stop.is_set() and len(outcomes) < 5000:
            try:
                outcomes.append(session.post(f"{url}/predict", json=row, timeout=10).status_code)
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)

    def wait_for_requests(n: int) -> None:
        deadline = time.time() + 60
        while len(outcomes) < n:
            assert time.time() < deadline and thread.is_alive()
            time.sleep(0.05)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        wait_for_requests(10)  # traffic before the swap ...
        before = requests.get(f"{url}/health", timeout=30).json()
        promote(uri, pipeline.model_name(cfg), str(new))
        deadline = time.time() + 30
        while (after := requests.get(f"{url}/health", timeout=30).json())["model_version"] != str(new):
            assert time.time() < deadline
        wait_for_requests(len(outcomes) + 10)  # ... during it, and after it
    finally:
        stop.set()
        thread.join()
        promote(uri, pipeline.model_name(cfg), result.tracked.version)  # other tests expect the original
    deadline = time.time() + 30
    while requests.get(f"{url}/health", timeout=30).json()["model_version"] != result.tracked.version:
        assert time.time() < deadline
    assert after["replica"] == before["replica"]  # swapped in place, not restarted
    assert requests.get(f"{url}/predict", timeout=30).status_code == 405
    assert len(outcomes) > 20 and set(outcomes) == {200}, {c: outcomes.count(c) for c in set(outcomes)}


@pytest.fixture(scope="module")
def monitored(endpoint, tmp_path_factory):
    """A second app on the same Serve instance, with a monitor and a small body limit."""
    from mlauto.monitor import start_monitor, stop_monitor

    url, cfg, result = endpoint
    start_monitor("serve-test-monitor", "mlauto-tests", pipeline.loader_for(cfg), window=10,
                  state_dir=str(tmp_path_factory.mktemp("monitor")))
    port = int(url.rsplit(":", 1)[1])
    mon_url = deploy(pipeline.loader_for(cfg), result.tracked.version, app_name="test-app-mon", host="127.0.0.1",
                     port=port, route_prefix="/mon", max_body_bytes=20_000,
                     monitor={"name": "serve-test-monitor", "namespace": "mlauto-tests", "flush_s": 0.2})
    yield mon_url, result
    serve.delete("test-app-mon")
    stop_monitor("serve-test-monitor", "mlauto-tests")


def test_feedback_joins_once_and_refuses_unknown_ids(monitored):
    url, result = monitored
    rows = result.splits.test[result.splits.features].head(3)
    resp = requests.post(f"{url}/predict", json=_records(rows), timeout=30).json()
    labels = result.splits.test[result.splits.target].head(3).tolist()
    ok = requests.post(f"{url}/feedback", json={"request_id": resp["request_id"], "labels": labels}, timeout=30)
    assert ok.status_code == 200, ok.text
    perf = ok.json()["performance"]
    assert perf["labels_total"] == 3
    assert perf["accuracy"] == np.mean(np.array(resp["predictions"]) == np.array(labels))
    again = requests.post(f"{url}/feedback", json={"request_id": resp["request_id"], "labels": labels}, timeout=30)
    assert again.status_code == 409
    unknown = requests.post(f"{url}/feedback", json={"request_id": "nope", "label": 1}, timeout=30)
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    assert requests.post(f"{url}/feedback", json={"label": 1}, timeout=30).status_code == 422
    drift = requests.get(f"{url}/drift", timeout=30).json()
    assert drift["performance"]["labels_total"] == 3  # the duplicate was not counted


def test_metrics_and_body_limit(monitored):
    url, result = monitored
    rows = _records(result.splits.test[result.splits.features].head(2))
    assert requests.post(f"{url}/predict", json=rows, timeout=30).status_code == 200
    too_big = rows * 200  # ~ 200 kB, over the 20 kB limit
    resp = requests.post(f"{url}/predict", json=too_big, timeout=30)
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]
    text = requests.get(f"{url}/metrics", timeout=30).text
    assert 'mlauto_requests_total{route="/mon/predict",status="413"}' in text
    assert 'mlauto_requests_total{route="/mon/predict",status="200"}' in text
    assert "mlauto_request_latency_seconds_bucket" in text and "mlauto_predictions_total" in text
    assert "mlauto_monitor_rows_dropped 0.0" in text


def test_autoscaling_config_deploys(trained):
    """serve=autoscale: Ray Serve's autoscaler owns the replica count; the endpoint answers."""
    from conftest import make_config

    cfg, result = trained
    conf = make_config(["serve=autoscale"])
    assert conf.serve.autoscaling["max_replicas"] == 2
    url = deploy(pipeline.loader_for(cfg), None, app_name="test-autoscale", host="127.0.0.1", port=free_port(),
                 route_prefix="/auto", replica_cpus=conf.serve.replica_cpus, autoscaling=conf.serve.autoscaling)
    try:
        status = serve.status().applications["test-autoscale"].deployments["ModelServer"]
        assert status.status == "HEALTHY"
        rows = _records(result.splits.test[result.splits.features].head(2))
        assert requests.post(f"{url}/predict", json=rows, timeout=30).status_code == 200
    finally:
        serve.delete("test-autoscale")
