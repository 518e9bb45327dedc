"""Request-path safety without Ray: the streamed body limit, JSON that never 500s, label checks,
who needs the token, credential redaction, and the model-built OpenAPI bodies."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from starlette.requests import Request

from mlauto.errors import ConfigError
from mlauto.redact import redact, redact_url
from mlauto.serve.body import BodyError, parse_json, read_json
from mlauto.serve.guard import Guard, is_loopback, token_hint
from mlauto.serve.labels import check_labels
from mlauto.serve.openapi import request_bodies


def _request(chunks: list[bytes], headers: dict[str, str] | None = None) -> tuple[Request, list[int]]:
    """A request whose body arrives in ``chunks``; the list returned counts the chunks read."""
    sent = [0]

    async def receive():
        i = sent[0]
        sent[0] += 1
        return {"type": "http.request", "body": chunks[i] if i < len(chunks) else b"",
                "more_body": i + 1 < len(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/predict",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    return Request(scope, receive), sent


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_whole():
    chunks = [b"[" + b"1," * 500] * 1000  # ~1 MB, no Content-Length
    request, sent = _request(chunks)
    with pytest.raises(BodyError) as exc:
        asyncio.run(read_json(request, 10_000))
    assert exc.value.status == 413 and "serve.max_body_bytes" in exc.value.detail
    assert sent[0] <= 11  # stopped at the first chunk past 10 kB, not after 1,000


def test_content_length_over_the_limit_is_refused_before_reading():
    request, sent = _request([b"{}"], {"content-length": "999999"})
    with pytest.raises(BodyError) as exc:
        asyncio.run(read_json(request, 1024))
    assert exc.value.status == 413 and sent[0] == 0


@pytest.mark.parametrize("raw", [b"[" * 3000 + b"]" * 3000, b"{not json", b"\xff\xfe", b"", b'{"a": [1, 2}'])
def test_malformed_or_deep_json_is_a_400(raw):
    with pytest.raises(BodyError) as exc:
        parse_json(raw)
    assert exc.value.status == 400


def test_large_bodies_parse_off_the_loop_and_small_ones_inline():
    body = json.dumps([{"x": float(i)} for i in range(5000)]).encode()
    request, _ = _request([body[i:i + 65536] for i in range(0, len(body), 65536)])
    assert len(asyncio.run(read_json(request, len(body)))) == 5000


def test_classifier_labels_wrong_kind_named_by_index_and_unseen_classes_marked():
    checked = check_labels([0, 1.0, "1", 1.5, True, None, [1], 7], [0, 1])
    assert [e["loc"] for e in checked.errors] == [["body", "labels", i] for i in (3, 4, 5, 6)]
    assert checked.labels == [0, 1, 1, 7] and checked.unseen == [7]  # indices of the labels sent  # 1.0 -> 1: never truncated, never cast later
    text = check_labels(["yes", 3, {"a": 1}, "maybe"], np.array(["no", "yes"], dtype=object))
    assert [e["loc"][-1] for e in text.errors] == [2] and text.labels == ["yes", "3", "maybe"]
    assert text.unseen == [1, 3]


def test_regressor_labels_must_be_finite_numbers():
    checked = check_labels([1, 2.5, "3", float("inf"), False], None)
    assert [e["loc"][-1] for e in checked.errors] == [2, 3, 4] and checked.labels == [1.0, 2.5]


def test_who_needs_the_token():
    local = Guard("t0ken", "127.0.0.1", [], protect_predict=False)
    assert not local.needs_token("/predict") and not local.needs_token("/model") and local.needs_token("/admin/retrain")
    assert Guard("t", "127.0.0.1", [], protect_predict=True).needs_token("/feedback")
    public = Guard("t0ken", "0.0.0.0", ["predict", "/docs"], protect_predict=False)
    assert [r for r in ("/predict", "/feedback", "/model", "/drift", "/events", "/metrics", "/docs", "/openapi.json",
                        "/health", "/admin/retrain") if public.needs_token(r)] == \
        ["/feedback", "/model", "/drift", "/events", "/metrics", "/openapi.json", "/admin/retrain"]
    assert public.refuse({}, "/model").status_code == 401
    assert public.refuse({"authorization": "Bearer nope"}, "/model").status_code == 403
    assert public.refuse({"authorization": "Bearer t0ken"}, "/model") is None
    assert Guard(None, "0.0.0.0", [], False).refuse({}, "/model").status_code == 403
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert token_hint("abcdefgh") == "abcd..."


def test_public_routes_are_checked(monkeypatch):
    from mlauto.config.checks import run_checks
    from mlauto.cli import to_config
    from mlauto.config.store import compose

    with pytest.raises(ConfigError) as exc:
        run_checks(to_config(compose(["serve.public_routes=[/admin/retrain]"])))
    assert "serve.public_routes" in str(exc.value)
    with pytest.raises(ConfigError, match="serve.max_records"):
        run_checks(to_config(compose(["serve.max_records=0"])))


def test_credentials_are_redacted_everywhere():
    url = "postgresql://alice:s3cr3t@db:5432/x"
    assert redact_url(url) == "postgresql://alice:***@db:5432/x"
    assert redact({"data": {"url": url, "path": None}, "l": [url]}) == \
        {"data": {"url": "postgresql://alice:***@db:5432/x", "path": None}, "l": ["postgresql://alice:***@db:5432/x"]}
    assert redact_url("sqlite:///a.db http://host/x") == "sqlite:///a.db http://host/x"
    assert "s3cr3t" not in str(ConfigError("data.url", url, "an SQLAlchemy URL"))


def test_openapi_bodies_come_from_the_feature_schema():
    schema = [{"name": "age", "type": "number", "min": 18.0, "max": 90.0},
              {"name": "city", "type": "string", "categories": ["Oslo", "Rome"]}]
    bodies = request_bodies(schema, [0, 1], max_records=100)
    record = bodies["record"]
    assert record["required"] == ["age", "city"] and record["additionalProperties"] is False
    assert record["properties"]["age"]["x-training-min"] == 18.0
    assert record["properties"]["city"]["x-training-categories"] == ["Oslo", "Rome"]
    content = bodies["predict"]["content"]["application/json"]
    assert content["example"] == {"age": 54.0, "city": "Oslo"}
    assert content["schema"]["anyOf"][1]["maxItems"] == 100
    label = bodies["feedback"]["content"]["application/json"]["schema"]["properties"]["label"]
    assert label["type"] == "integer" and label["x-known-classes"] == [0, 1]


def test_one_stored_label_of_another_kind_never_fails_a_retrain(tmp_path):
    from mlauto.data import Snapshot
    from mlauto.retrain import with_production_rows

    base = pd.DataFrame({"x": [1.0, 2.0], "city": ["a", "b"], "y": [0, 1]})
    base.to_parquet(tmp_path / "snap.parquet", index=False)
    snap = Snapshot(str(tmp_path / "snap.parquet"), "f" * 16, 2, list(base.columns), 0.0)
    rows = pd.DataFrame({"x": [3.0, 4.0], "city": [5, "c"], "y": [1, "oops"]})
    path, _ = with_production_rows(snap, rows, str(tmp_path / "out"))
    out = pd.read_parquet(path)
    assert len(out) == 4 and out["city"].tolist() == ["a", "b", "5", "c"]
    assert out["y"].isna().sum() == 1  # the bad label is missing: cleaning quarantines that row
