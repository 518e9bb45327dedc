"""Helpers the test tiers share: config composition, searches built from keywords, free ports, HTTP load,
Serve and actor waits, and the small data sets and search spaces both tiers of a topic use.

Plain functions, classes and constants, no fixtures (those live in the conftest files): a test imports
what it needs with ``from tests.helpers import make_config``. Ray is imported only inside the helpers
that use it, so the unit tier can import this module without starting anything.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlauto.cli import to_config
from mlauto.config import Config
from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
from mlauto.config.store import compose
from mlauto.tune import SearchRun, run_search
from mlauto.tune.search import TrialResult

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout the tests run from: what a subprocess needs on PYTHONPATH to import this mlauto."""


# The old fast settings the tests run with unless they test the feature: holdout selection, not k-fold CV;
# the search samples from its first trial (no portfolio of known-good configs first)
FAST_TESTS = ["tune.cv_folds=0", "tune.portfolio=0", "tune.ensemble.method=none"]


def fast(overrides: list[str]) -> list[str]:
    """``overrides`` plus :data:`FAST_TESTS` for the keys they do not set themselves."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [o for o in FAST_TESTS if o.split("=", 1)[0] not in keys] + list(overrides)


def make_config(overrides: list[str] | None = None) -> Config:
    """Compose and validate a config exactly as the launcher does (with :data:`FAST_TESTS` pinned)."""
    return to_config(compose(fast(overrides or [])))


def search(data: tuple, families: dict[str, Any], *, task: str = "binary", scheduler: str = "fifo",
           scheduler_options: dict[str, Any] | None = None, **kw: Any) -> Any:
    """:func:`run_search` with its config sections built from keywords (``num_samples=4, algorithm="grid"``),
    the schema's defaults for the rest; ``name``, ``storage_path``, ``metric``, ``mode``, ``seed`` and
    ``points_to_evaluate`` make the :class:`SearchRun`."""
    def take(cls: type) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: kw.pop(k) for k in list(kw) if k in names})

    run = take(SearchRun)
    tune_conf, search_conf = take(TuneConf), take(SearchConf)
    scheduler_conf = SchedulerConf(name=scheduler, **(scheduler_options or {}))
    assert not kw, f"not a run_search setting: {sorted(kw)}"
    return run_search(data, task, tune_conf, search_conf, scheduler_conf, families, run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_root(cfg: Config, root: Path) -> Config:
    return dataclasses.replace(cfg, root=str(root))


class RequestLoop:
    """Clients POSTing one record in a loop from threads; records every outcome (status or exception)."""

    def __init__(self, url: str, body: dict, clients: int = 1, limit: int = 20000) -> None:
        self.url, self.body, self.limit = url, body, limit
        self.outcomes: list = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        import requests

        session = requests.Session()
        while not self.stop_event.is_set() and len(self.outcomes) < self.limit:
            try:
                self.outcomes.append(session.post(self.url, json=self.body, timeout=30).status_code)
            except requests.RequestException as exc:
                self.outcomes.append(type(exc).__name__)

    def __enter__(self) -> "RequestLoop":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join()

    def wait_for(self, n: int, timeout: float = 120) -> None:
        """Until ``n`` requests have answered in all."""
        deadline = time.time() + timeout
        while len(self.outcomes) < n:
            assert time.time() < deadline, f"only {len(self.outcomes)} of {n} requests answered"
            assert any(t.is_alive() for t in self.threads)
            time.sleep(0.05)

    def failures(self) -> dict:
        return {o: self.outcomes.count(o) for o in set(self.outcomes) if o != 200}


def clear_serve() -> None:
    """Delete every Serve app but keep Serve running: a full shutdown and restart costs ~30 s a time."""
    from ray import serve

    for app in list(serve.status().applications):
        serve.delete(app)


def shutdown_serve(timeout: float = 60.0) -> None:
    """Stop Serve and wait until its controller and proxy actors are gone, so the next ``serve.run``
    starts a fresh Serve instead of racing the dying one (an HAProxy proxy actor killed under it)."""
    import time

    import ray
    from ray import serve

    serve.shutdown()
    deadline = time.time() + timeout
    while time.time() < deadline:
        left = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "serve" and a["name"].startswith("SERVE_")]
        if not left:
            return
        time.sleep(0.5)
    raise TimeoutError(f"Serve actors still alive {timeout:.0f}s after serve.shutdown(): {left}")


def wait_for_actor(handle, until, timeout: float = 40.0) -> dict:
    """Poll ``handle.status()`` until ``until(status)`` holds, riding out an actor restart."""
    import ray

    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        try:
            status = ray.get(handle.status.remote())
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            time.sleep(0.3)  # restarting
            continue
        if until(status):
            return status
        time.sleep(0.2)
    raise TimeoutError(status)


# Cleaning (tests/unit/data/test_clean.py, tests/integration/test_clean.py)

def dirty_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Mixed types as a CSV reader sees them (text), missing values, bad numbers, odd categories, duplicates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n).astype(str).astype(object),
        "income": np.round(rng.normal(50, 10, n), 2).astype(str).astype(object),
        "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        "plan": rng.choice(["a", "b"], n).astype(object),
        "y": rng.choice(["no", "yes"], n).astype(object),
    })
    frame.loc[[5, 17], "age"] = "abc"  # unparseable numbers
    frame.loc[[9], "income"] = "n/a!"
    frame.loc[[20, 21, 22], "income"] = None  # plain missing values: kept, imputed later
    frame.loc[[30, 31], "y"] = None  # missing target
    frame.loc[[40], "y"] = "  "
    frame.loc[[50], "city"] = "atlantis"  # out of domain when categories are configured
    frame.loc[[60], "age"] = "150"  # out of range when a range is configured
    frame = pd.concat([frame, frame.iloc[[100, 101, 101]]], ignore_index=True)  # three duplicate rows
    return frame


CLEAN_RULES = {"columns": {"age": {"range": [0, 120]}, "city": {"categories": ["paris", "lyon", "nice"]}}}


# Feature steps (tests/unit/features, tests/integration/test_features.py)

def mixed_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    city = rng.choice([f"city{i:02d}" for i in range(30)], n)
    frame = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.1, np.nan, x),
        "amount": np.exp(rng.normal(size=n)),
        "city": city,
        "color": rng.choice(["red", "green", None], n),
        "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 24 * 365, n), unit="h"),
    })
    y = np.where(x + (pd.Series(city).str[-1].astype(int) % 2) > 0.5, "yes", "no")
    return frame, y


# Ingestion (tests/unit/data/test_ingest.py, tests/integration/test_ingest.py)

def ingest_frame(n: int = 40, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(n), "x": np.arange(n) * 0.5 + shift, "c": list("ab") * (n // 2),
                         "y": [0, 1] * (n // 2)})


def write_sqlite(path, frame: pd.DataFrame, table: str = "rows") -> str:
    with sqlite3.connect(path) as conn:
        frame.to_sql(table, conn, index=False)
    return f"sqlite:///{path}"


# Profiles (tests/unit/data/test_profile.py, tests/integration/test_profile.py)

def profile_frame(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(["a", "b"], n, p=[0.75, 0.25])
    x = np.where(y == "a", 0.0, 5.0) + rng.normal(size=n)
    x[::10] = np.nan
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "color": np.where(y == "a", "red", "blue"),
                         "y": y}).astype({"color": object})


# The experiment report, read as written or as a headless browser renders it

class Dom(HTMLParser):
    """Sections, figures, notes and table cells of a report (as written, or as a browser dumped it)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.skipped: dict[str, str] = {}
        self.failed: list[str] = []
        self.cells: list[tuple[str, str]] = []  # (section, text)
        self.h1 = ""
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "img" and "plot" in (a.get("class") or ""):
            self.images.append({**a, "section": self.sections[-1]})
        elif tag == "p" and a.get("data-skipped"):
            self._in = "skipped"
        elif tag == "p" and a.get("data-failed"):
            self.failed.append(self.sections[-1])
        elif tag in ("td", "th"):
            self._in = "cell"
            self.cells.append((self.sections[-1] if self.sections else "", ""))
        elif tag == "h1":
            self._in = "h1"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "td", "th", "h1"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "skipped":
            self.skipped[self.sections[-1]] = self.skipped.get(self.sections[-1], "") + data
        elif self._in == "cell":
            self.cells[-1] = (self.cells[-1][0], self.cells[-1][1] + data)
        elif self._in == "h1":
            self.h1 += data

    def texts(self, section: str) -> list[str]:
        return [text for key, text in self.cells if key == section]

    def fact(self, name: str, section: str = "summary") -> str:
        """The cell right after the cell ``name`` in ``section`` (a fact's value, a class's row count)."""
        texts = self.texts(section)
        return texts[texts.index(name) + 1]


def browser() -> str | None:
    found = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return found


def rendered(path: str, tmp_path: Path) -> Dom:
    """The report's DOM after a headless Chromium loaded it and ran its script."""
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000", "--dump-dom",
           Path(path).resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return Dom(proc.stdout)


def assert_all_rendered(dom: Dom) -> None:
    assert dom.images, "no figures in the report"
    broken = [(img["section"], img.get("alt"), img.get("data-rendered")) for img in dom.images
              if img.get("data-rendered") != "1"]
    assert not broken, f"figures the browser did not render: {broken}"


# Search spaces small enough for a test (tests/unit/tune/test_search.py, tests/integration/test_search.py)

LOGREG = {"space": {"C": {"type": "loguniform", "low": 0.01, "high": 100.0}}, "fixed": {"max_iter": 500}}


HIST = {"space": {"max_leaf_nodes": {"type": "int", "low": 4, "high": 16},
                  "learning_rate": {"type": "choice", "values": [0.1, 0.3]}}, "fixed": {"max_iter": 20}}


MLP = {"space": {"lr": {"type": "loguniform", "low": 1.0e-5, "high": 3.0e-2}, "hidden": {"type": "choice", "values": [8]}},
       "fixed": {"max_epochs": 12, "patience": 100, "batch_size": 32}}


# Boosters (tests/unit/models/test_lightgbm.py, tests/unit/models/test_xgboost.py)

def booster_data(task: str, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A noisy target on 2 of 5 columns, split 3:1 into training and validation rows: early stopping
    on the validation rows ends a long boosting run early."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    signal = X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=1.0, size=n)
    y = {"binary": (signal > 0).astype(int), "multiclass": np.digitize(signal, [-0.7, 0.7]),
         "regression": signal}[task]
    return X[: n * 3 // 4], y[: n * 3 // 4], X[n * 3 // 4:], y[n * 3 // 4:]


# Model selection (tests/unit/tune/test_select.py, tests/integration/test_select.py)

def trial_result(tid: str, family: str, score: float, params: dict | None = None, status: str = "ok") -> TrialResult:
    metrics = {"score": score, "train_seconds": 0.1 * len(tid), "infer_ms_per_row": 0.01} if status == "ok" else {}
    return TrialResult(tid, family, params or {"C": score}, metrics, status)


# Tune and track (tests/unit/tune/test_tune_track.py, tests/integration/test_tune_track.py)

TUNE_FAMILIES = {
    "logreg": {"space": {"C": {"type": "loguniform", "low": 0.01, "high": 10.0}}, "fixed": {"max_iter": 500}},
    "hist_gb": {"space": {"max_leaf_nodes": {"type": "int", "low": 4, "high": 16}}, "fixed": {"max_iter": 30}},
}


def s3_keys(uri: str) -> list[str]:
    """Every object key under an ``s3://bucket/prefix``, listed with boto3."""
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def venv_without_mlauto(path: Path) -> Path:
    """A fresh venv at ``path`` that sees this venv's installed packages but not mlauto; its python.

    Honest isolation, and fast (no dependency is installed): the new venv's own site-packages holds a
    ``.pth`` file with one line, this venv's site-packages folder. Python appends such a line to
    ``sys.path`` but never reads the ``.pth`` files inside the folder it names, so the hook of mlauto's
    editable install (``__editable__.mlauto-*.pth``) does not run there and ``import mlauto`` fails, while
    ray, mlflow, scikit-learn and the rest import as usual. Run it with :func:`clean_env` and a cwd
    outside the checkout, so neither PYTHONPATH nor the current folder brings the checkout back.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=clean_env()).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH and the user site (nothing can reach the checkout),
    and with PYTHONSAFEPATH so ``python -m``/``-c`` do not put the current folder first on ``sys.path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update({"PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1", **extra})
    return env
