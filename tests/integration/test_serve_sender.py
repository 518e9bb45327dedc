"""The monitor sender against real Ray actors: rows grouped by version (never two widths in one
array), large batches chunked, every row counted as acknowledged or dropped with a reason."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ray

from mlauto.serve.sender import BUFFER_FULL, MONITOR_ERROR, SEND_CHUNK, UNREACHABLE, MonitorSender

NS = "mlauto-tests"


class Sink:
    """A monitor stand-in that takes ``version`` (as the monitor does once it keeps per-version windows)."""

    def __init__(self, width: int | None = None) -> None:
        self.calls: list[tuple[str | None, int, int]] = []
        self.width = width

    def ingest(self, features, predictions, row_ids, confidence=None, records=None, version=None) -> int:
        if self.width is not None and features.shape[1] != self.width:
            raise ValueError(f"width {features.shape[1]} is not {self.width}")
        self.calls.append((version, features.shape[1], len(row_ids)))
        return len(row_ids)

    def seen(self):
        return self.calls


class OldSink:
    """A monitor whose ingest has no ``version`` keyword: the sender still delivers."""

    def __init__(self) -> None:
        self.rows = 0

    def ingest(self, features, predictions, row_ids, confidence=None, records=None) -> int:
        self.rows += len(row_ids)
        return self.rows

    def seen(self):
        return self.rows


def _rows(n: int, width: int, tag: str):
    return (np.zeros((n, width)), np.zeros(n), np.full(n, 0.5), [f"{tag}:{i}" for i in range(n)],
            [{"x": i} for i in range(n)])


def _adds_up(c: dict) -> None:
    before = sum(v for k, v in c["dropped"].items() if k != MONITOR_ERROR)
    assert c["received"] == c["pending"] + c["sent"] + before, c
    assert c["sent"] == c["acknowledged"] + c["in_flight"] + c["dropped"].get(MONITOR_ERROR, 0), c


@pytest.fixture
def sink(ray_session, request):
    cls, kwargs = request.param
    name = f"sink-{cls.__name__}-{time.time_ns()}"
    actor = ray.remote(num_cpus=0)(cls).options(name=name, namespace=NS).remote(**kwargs)
    yield name, actor
    ray.kill(actor)


@pytest.mark.parametrize("sink", [(Sink, {})], indirect=True)
def test_versions_are_sent_apart_and_large_batches_in_chunks(sink):
    name, actor = sink
    sender = MonitorSender(name, NS, flush_s=60, max_buffer=100_000)
    sender.add(*_rows(3, 4, "a"), version="1")
    sender.add(*_rows(2, 6, "b"), version="2")  # a model of another width, between two of the first
    sender.add(*_rows(SEND_CHUNK + 10, 4, "c"), version="1")
    sender.settle(timeout=120)  # a new actor's process can take long to start on a loaded machine
    calls = ray.get(actor.seen.remote())
    assert sorted(calls) == sorted([("1", 4, SEND_CHUNK), ("1", 4, 13), ("2", 6, 2)])
    c = sender.counts()
    assert c["acknowledged"] == c["received"] == SEND_CHUNK + 15 and c["dropped_total"] == 0
    _adds_up(c)
    sender.close()


@pytest.mark.parametrize("sink", [(Sink, {"width": 4})], indirect=True)
def test_refused_ingest_and_full_buffer_are_counted_drops(sink):
    name, _ = sink
    sender = MonitorSender(name, NS, flush_s=60, max_buffer=10)
    sender.add(*_rows(4, 4, "a"), version="1")
    sender.add(*_rows(3, 6, "b"), version="2")  # the monitor refuses this width
    sender.add(*_rows(5, 4, "c"), version="1")  # 3 fit, 2 do not
    sender.settle(timeout=120)  # a new actor's process can take long to start on a loaded machine
    c = sender.counts()
    assert c["dropped"] == {BUFFER_FULL: 2, MONITOR_ERROR: 3}, c
    assert c["acknowledged"] == 7 and c["received"] == 12
    _adds_up(c)
    assert sender.alive()
    sender.close()


@pytest.mark.parametrize("sink", [(OldSink, {})], indirect=True)
def test_monitor_without_version_keyword_still_gets_rows(sink):
    name, actor = sink
    sender = MonitorSender(name, NS, flush_s=60, max_buffer=100)
    sender.add(*_rows(4, 4, "a"), version="1")
    sender.settle(timeout=120)  # a new actor's process can take long to start on a loaded machine
    assert ray.get(actor.seen.remote()) == 4 and sender.counts()["acknowledged"] == 4
    sender.close()


def test_absent_monitor_is_a_counted_drop_and_the_loop_lives(ray_session):
    sender = MonitorSender("no-such-monitor", NS, flush_s=0.05, max_buffer=100)
    sender.add(*_rows(4, 4, "a"), version="1")
    deadline = time.time() + 10
    while sender.counts()["dropped"].get(UNREACHABLE, 0) < 4:
        assert time.time() < deadline, sender.counts()
        time.sleep(0.05)
    _adds_up(sender.counts())
    assert sender.alive()
    sender.close()


class _SlowSender(MonitorSender):
    """A sender whose every submission takes 50 ms, as serialising a large chunk does."""

    def _send(self, actor, rows) -> None:
        time.sleep(0.05)
        super()._send(actor, rows)


@pytest.mark.parametrize("sink", [(Sink, {})], indirect=True)
def test_counters_add_up_while_a_flush_is_sending(sink):
    """Rows a flush has taken but not yet submitted are still pending, so a reading taken mid-flush
    adds up (it once showed ``pending == 0`` with rows in neither pending nor sent)."""
    name, _ = sink
    sender = _SlowSender(name, NS, flush_s=60, max_buffer=100_000)
    for v in range(6):  # six versions: six submissions, 0.3 s of flush
        sender.add(*_rows(10, 4, f"v{v}"), version=str(v))
    import threading

    flusher = threading.Thread(target=sender.settle, kwargs={"timeout": 120})
    flusher.start()
    readings = []
    while flusher.is_alive():
        readings.append(sender.counts())
        _adds_up(readings[-1])
        time.sleep(0.01)
    flusher.join()
    assert any(0 < r["sent"] < 60 for r in readings), "no reading fell inside the flush"
    c = sender.counts()
    assert c["acknowledged"] == c["received"] == 60 and c["pending"] == 0
    _adds_up(c)
    sender.close()
