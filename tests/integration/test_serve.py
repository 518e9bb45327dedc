"""The endpoint over real HTTP: predictions, schema, validation errors."""

import json

import numpy as np
import pytest
import requests
from ray import serve

from tests.helpers import RequestLoop, free_port, make_config
from mlauto.config.schema import MonitorConf, ServeConf
from mlauto import context, ops
from mlauto.serve import deploy


@pytest.fixture(scope="module")
def endpoint(trained):
    cfg, result = trained
    url = deploy(context.loader_for(cfg),
                 ServeConf(app_name="test-app", host="127.0.0.1", port=free_port(), route_prefix="/", poll_s=0.5),
                 None)
    yield url, cfg, result
    serve.delete("test-app")  # Serve itself stays up for the next module (a shutdown costs ~30 s)


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


def _malformed(rng, good: dict) -> tuple[str, object]:
    """One random bad body: broken JSON, wrong shapes, wrong types, unknown or missing fields."""
    junk = [True, "x" * int(rng.integers(0, 300)), [], {}, [1, "a"], {"a": {"b": []}}, "NaN", False]
    kind = int(rng.integers(0, 7))
    body = dict(good)
    field = list(good)[int(rng.integers(0, len(good)))]
    if kind == 0:
        return "raw", bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8))
    if kind == 1:
        broken = ['{"' + field + '": ' + str(rng.integers(0, 9)) + ",,}", json.dumps(good).replace("}", ', "x": NaN}'),
                  json.dumps({**good, field: "@"}).replace('"@"', rng.choice(["NaN", "Infinity", "-Infinity"]))]
        return "raw", broken[int(rng.integers(0, len(broken)))]
    if kind == 2:
        return "json", junk[int(rng.integers(0, len(junk)))]
    if kind == 3:
        body[field] = junk[int(rng.integers(0, len(junk)))] if rng.random() < 0.5 else str(body[field])
    elif kind == 4:
        body[f"unknown_{int(rng.integers(0, 1000))}"] = 1.0
    elif kind == 5:
        del body[field]
    else:
        return "json", [body, {**good, field: [good[field]]}]
    return "json", [good] * int(rng.integers(0, 3)) + [body] if rng.random() < 0.5 else body


def test_a_thousand_malformed_payloads_get_4xx_and_the_server_stays_up(endpoint):
    from concurrent.futures import ThreadPoolExecutor

    url, _, result = endpoint
    good = _records(result.splits.test[result.splits.features].head(1))[0]
    rng = np.random.default_rng(7)
    bodies = [_malformed(rng, good) for _ in range(1000)]
    session = requests.Session()

    def send(item):
        kind, body = item
        if kind == "raw":
            return session.post(f"{url}/predict", data=body, timeout=30).status_code
        return session.post(f"{url}/predict", json=body, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, bodies))
    assert all(400 <= c < 500 for c in codes), {c: codes.count(c) for c in set(codes)}
    assert requests.post(f"{url}/predict", json=good, timeout=30).status_code == 200  # still serving
    assert requests.get(f"{url}/health", timeout=30).json()["status"] == "ok"


def test_a_killed_replica_is_replaced_and_requests_barely_fail(trained):
    """Kill one of two replicas under a request loop: Serve replaces it; only the requests in flight on it fail."""
    import time

    import ray

    cfg, result = trained
    url = deploy(context.loader_for(cfg),
                 ServeConf(app_name="test-kill", host="127.0.0.1", port=free_port(), route_prefix="/kill",
                           num_replicas=2),
                 None)
    try:
        replicas = set()
        deadline = time.time() + 60
        while len(replicas) < 2:
            assert time.time() < deadline
            replicas.add(requests.get(f"{url}/health", timeout=30).json()["replica"])
        row = _records(result.splits.test[result.splits.features].head(1))[0]
        victim = sorted(replicas)[0]
        with RequestLoop(f"{url}/predict", row, clients=2) as loop:
            loop.wait_for(200)
            ray.kill(ray.get_actor(f"SERVE_REPLICA::test-kill#ModelServer#{victim}", namespace="serve"),
                     no_restart=True)
            deadline = time.time() + 90
            while True:  # until a new replica answers (probes are not counted: the loop's requests are)
                try:
                    seen = requests.get(f"{url}/health", timeout=30).json()["replica"]
                except requests.RequestException:
                    seen = None
                if seen is not None and seen not in replicas:
                    break
                assert time.time() < deadline, "no replacement replica came up"
                time.sleep(0.1)
            loop.wait_for(max(1000, len(loop.outcomes) + 100))
        failed = sum(loop.failures().values())
        # Only the requests in flight on the killed replica may fail: at most one per client.
        assert failed <= 2, (failed, len(loop.outcomes), loop.failures())
        assert serve.status().applications["test-kill"].deployments["ModelServer"].status == "HEALTHY"
    finally:
        serve.delete("test-kill")


def test_serve_deploy_config_file_builds_the_same_app(trained, tmp_path):
    """`mlauto action=serve_config` writes a file that `serve deploy` accepts: check it against Serve's
    schema and build the app from its import_path and args, as the Serve controller does."""
    import os

    import yaml
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    cfg, result = trained
    path = tmp_path / "serve_config.yaml"
    ops.serve_config(cfg, str(path))
    assert os.stat(path).st_mode & 0o077 == 0  # it holds the admin token
    content = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(content) if hasattr(ServeDeploySchema, "model_validate") else \
        ServeDeploySchema.parse_obj(content)
    app_conf = content["applications"][0]
    app = call_user_app_builder_with_args_if_necessary(import_attr(app_conf["import_path"]), app_conf["args"])
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from mlauto.serve.app import _http_address

    host, port = _http_address("127.0.0.1", port)
    serve.run(app, name="test-config", route_prefix="/conf")
    try:
        url = f"http://{host}:{port}/conf"
        rows = _records(result.splits.test[result.splits.features].head(3))
        resp = requests.post(f"{url}/predict", json=rows, timeout=30)
        assert resp.status_code == 200 and resp.json()["model"]["version"] == result.tracked.version
        token = app_conf["args"]["admin_token"]
        assert requests.post(f"{url}/admin/retrain", timeout=30).status_code == 401
        authorised = requests.post(f"{url}/admin/retrain", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert authorised.status_code == 503 and "monitor" in authorised.text  # past the gate; no monitor runs
    finally:
        serve.delete("test-config")
    bad = dict(app_conf["args"], colour="red")
    with pytest.raises(Exception, match="colour"):
        call_user_app_builder_with_args_if_necessary(import_attr(app_conf["import_path"]), bad)


def test_health_model_and_drift_routes(endpoint):
    url, cfg, result = endpoint
    assert requests.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    info = requests.get(f"{url}/model", timeout=30).json()
    assert info["version"] == result.tracked.version and info["name"] == context.model_name(cfg)
    assert info["data_fingerprint"] == result.snapshot.fingerprint
    assert [c["name"] for c in info["schema"]] == result.splits.features
    metric = result.search.metric  # tune.metric=auto, resolved for the task
    assert info["metric"] == metric and info["task"] == result.task == "binary"
    assert info["test_metrics"][metric] == pytest.approx(result.final.test_metrics[metric])
    assert requests.get(f"{url}/drift", timeout=30).status_code == 404  # deployed without a monitor
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200


def test_swap_under_load_is_in_place_and_drops_nothing(endpoint):
    """Promoting another version under a request loop: the replica swaps the model in place, no
    request fails, and a rollback swaps it back."""
    import time

    import mlflow
    from mlflow.tracking import MlflowClient

    from mlauto.track import promote

    url, cfg, result = endpoint
    uri = context.tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    source = MlflowClient(uri).get_model_version(context.model_name(cfg), result.tracked.version).source
    new = mlflow.register_model(source, context.model_name(cfg)).version
    row = _records(result.splits.test[result.splits.features].head(1))[0]
    try:
        with RequestLoop(f"{url}/predict", row) as loop:
            loop.wait_for(10)  # traffic before the swap ...
            before = requests.get(f"{url}/health", timeout=30).json()
            promote(uri, context.model_name(cfg), str(new))
            deadline = time.time() + 30
            while (after := requests.get(f"{url}/health", timeout=30).json())["model_version"] != str(new):
                assert time.time() < deadline
            loop.wait_for(len(loop.outcomes) + 10)  # ... during it, and after it
    finally:
        promote(uri, context.model_name(cfg), result.tracked.version)  # other tests expect the original
    deadline = time.time() + 30
    while requests.get(f"{url}/health", timeout=30).json()["model_version"] != result.tracked.version:
        assert time.time() < deadline
    assert after["replica"] == before["replica"]  # swapped in place, not restarted
    assert requests.get(f"{url}/predict", timeout=30).status_code == 405
    assert len(loop.outcomes) > 20 and not loop.failures(), loop.failures()


@pytest.fixture(scope="module")
def monitored(endpoint, tmp_path_factory):
    """A second app on the same Serve instance, with a monitor and a small body limit."""
    from mlauto.monitor import start_monitor, stop_monitor

    url, cfg, result = endpoint
    start_monitor(context.loader_for(cfg), MonitorConf(actor_name="serve-test-monitor", window=10), "mlauto-tests",
                  target=cfg.data.target, state_dir=str(tmp_path_factory.mktemp("monitor")))
    port = int(url.rsplit(":", 1)[1])
    mon_url = deploy(context.loader_for(cfg),
                     ServeConf(app_name="test-app-mon", host="127.0.0.1", port=port, route_prefix="/mon",
                               max_body_bytes=20_000, monitor_flush_s=0.2),
                     result.tracked.version, {"name": "serve-test-monitor", "namespace": "mlauto-tests"})
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
    assert drift["performance"]["labelled_rows"] == 3  # kept as training data for the next retrain
    events = requests.get(f"{url}/events", params={"limit": 5}, timeout=30)
    assert events.status_code == 200 and isinstance(events.json()["events"], list)
    assert requests.get(f"{url}/events", params={"limit": 0}, timeout=30).status_code == 422


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
    assert "mlauto_monitor_rows_dropped_total{reason=\"buffer_full\"} 0.0" in text
    assert "mlauto_monitor_rows_acknowledged_total" in text


def test_autoscaling_config_deploys(trained):
    """serve=autoscale: Ray Serve's autoscaler owns the replica count; the endpoint answers."""
    cfg, result = trained
    conf = make_config(["serve=autoscale"])
    assert conf.serve.autoscaling["max_replicas"] == 2
    url = deploy(context.loader_for(cfg),
                 ServeConf(app_name="test-autoscale", host="127.0.0.1", port=free_port(), route_prefix="/auto",
                           replica_cpus=conf.serve.replica_cpus, autoscaling=conf.serve.autoscaling),
                 None)
    try:
        status = serve.status().applications["test-autoscale"].deployments["ModelServer"]
        assert status.status == "HEALTHY"
        rows = _records(result.splits.test[result.splits.features].head(2))
        assert requests.post(f"{url}/predict", json=rows, timeout=30).status_code == 200
    finally:
        serve.delete("test-autoscale")
