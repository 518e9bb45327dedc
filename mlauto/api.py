"""The Python API: what the ``mlauto`` command does, from a notebook or a script.

``compose`` builds the config exactly as the command does; ``fit`` trains on a DataFrame, a path or a
Ray Dataset and returns a :class:`FitResult`; ``FitResult.serve`` starts the endpoint and its monitor
and returns an :class:`Endpoint`; ``load`` gives a registered model back. Nothing here blocks, prints
Hydra's banner or imports Ray before it is needed; Ray is started once per process and reused.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from mlauto.config import Config
from mlauto.context import build_config, model_name, to_config
from mlauto.errors import MlautoError

if TYPE_CHECKING:
    import pandas as pd

    from mlauto.train import Trained

logger = logging.getLogger(__name__)

# What fit runs: training and registering. Serving and monitoring start with FitResult.serve().
TRAIN_STAGES = ("ingest", "prepare", "tune")
INPUTS = "inputs"  # <root>/inputs/: the DataFrames and Ray Datasets fit was given, as Parquet


def compose(overrides: Sequence[str] = (), config_dir: str | None = None) -> Config:
    """The validated config for ``overrides`` (``["models=fast", "tune.num_samples=4"]``), exactly as
    ``mlauto OVERRIDES`` builds it; ``config_dir`` is the command's ``--config-dir``."""
    return build_config(list(overrides), config_dir)


def ensure_ray(cfg: Config) -> None:
    """Start (or connect to) Ray once per process and keep it: later calls reuse it. The serving
    ingress settings are applied now, as Ray's processes start with them."""
    import ray

    from mlauto import runtime

    if ray.is_initialized():
        return
    runtime.connect(cfg.cluster.address, cfg.cluster.namespace, cfg.cluster.num_cpus,
                    env=runtime.serve_ingress_env(cfg.serve.ingress))


def _data_path(data: Any, root: str) -> str:
    """A path as given; a DataFrame or Ray Dataset written as Parquet under ``<root>/inputs``, so it
    goes through the file source, and so the same snapshot, fingerprint and quarantine as any file
    (a retrain on a worker reads it again from there)."""
    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        return os.path.abspath(os.path.expanduser(os.fspath(data)))
    directory = os.path.join(root, INPUTS)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, pd.DataFrame):
        from mlauto.data import fingerprint

        frame = data.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        path = os.path.join(directory, f"frame-{fingerprint(frame)}.parquet")
        if not os.path.exists(path):  # named by content: the same frame is written once
            tmp = f"{path}.tmp-{os.getpid()}"
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        return path
    import ray.data

    if isinstance(data, ray.data.Dataset):
        path = os.path.join(directory, f"dataset-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}")
        data.write_parquet(path)
        return path
    raise MlautoError(f"fit takes a pandas DataFrame, a path or a Ray Dataset, got {type(data).__name__}")


def _output_dir(root: str) -> str:
    """A run folder as the command's (``<root>/outputs/<date>/<time>``)."""
    now = time.time()
    stamp = time.strftime("%H-%M-%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
    return os.path.join(root, "outputs", time.strftime("%Y-%m-%d", time.localtime(now)), stamp)


def fit(data: Any = None, target: str | None = None, overrides: Sequence[str] = (), root: str | os.PathLike | None = None,
        config_dir: str | None = None) -> "FitResult":
    """Train on ``data`` and register the best model as the champion; returns a :class:`FitResult`.

    ``data``: a pandas DataFrame, a path (file, folder or glob of CSV/Parquet/JSON lines) or a Ray
    Dataset; None uses the configured ``data`` (the bundled sample by default). ``target`` is the
    label column (default: ``data.target``). ``overrides`` are the command's (``models=fast``,
    ``tune.num_samples=8``, ``experiment=...``); ``root`` is where runs, snapshots and the model
    registry go (default: ``root``'s ``runs``). Runs the ingest, prepare and tune stages; serving
    starts with :meth:`FitResult.serve`.
    """
    from mlauto import ops
    from mlauto.config.store import compose as compose_dict

    dc = compose_dict(list(overrides), config_dir)
    if root is not None:
        dc.root = os.fspath(root)
    dc.root = os.path.abspath(dc.root)
    if data is not None:
        dc.data.source, dc.data.path, dc.data.format = "file", _data_path(data, dc.root), None
    if target is not None:
        dc.data.target = target
    dc.stages = [s for s in dc.stages if s in TRAIN_STAGES]
    cfg = to_config(dc)
    if "tune" not in cfg.stages:
        raise MlautoError(f"fit trains: stages must include tune, got {list(cfg.stages)}")
    ensure_ray(cfg)
    done = ops.execute(cfg, _output_dir(cfg.root))
    return FitResult(done.config, done.summary, done.trained)  # type: ignore[arg-type]


@dataclass
class Model:
    """A registered model version: ``predict`` / ``predict_proba`` on a DataFrame of its features."""

    name: str
    version: str
    run_id: str
    pipeline: Any  # the sklearn Pipeline: "prep" then "model"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [c["name"] for c in self.meta.get("schema", [])]

    def _x(self, X: "pd.DataFrame") -> "pd.DataFrame":
        cols = self.features
        return X[cols] if cols and set(cols) <= set(X.columns) else X

    def predict(self, X: "pd.DataFrame") -> Any:
        return self.pipeline.predict(self._x(X))

    def predict_proba(self, X: "pd.DataFrame") -> Any:
        return self.pipeline.predict_proba(self._x(X))

    @property
    def classes_(self) -> Any:
        return getattr(self.pipeline, "classes_", None)


def load(name: str, version: str | int | None = None, root: str | os.PathLike = "runs",
         tracking_uri: str | None = None) -> Model:
    """The registered model ``name`` (the champion, or ``version``) from ``tracking_uri`` (default:
    the SQLite store under ``root``, where ``fit`` and the command register)."""
    from mlauto.track import BundleLoader, sqlite_uri

    bundle = BundleLoader(tracking_uri or sqlite_uri(os.path.abspath(os.fspath(root))), name,
                          with_reference=False)(version)
    return Model(bundle.model_name, bundle.version, bundle.run_id, bundle.pipeline, bundle.meta)


@dataclass
class FitResult:
    """What :func:`fit` trained: the champion, its leaderboard, Pareto front, report and summary."""

    config: Config
    summary: dict[str, Any]
    trained: "Trained"

    @property
    def run_id(self) -> str:
        return self.trained.tracked.run_id  # type: ignore[union-attr]

    @property
    def version(self) -> str:
        return self.trained.tracked.version  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        return model_name(self.config)

    @property
    def model(self) -> Model:
        """The champion pipeline (``predict`` / ``predict_proba`` on a DataFrame)."""
        final, splits = self.trained.final, self.trained.splits
        meta = {"family": final.family, "params": final.params, "task": self.trained.task,
                "schema": [{"name": c} for c in splits.features]}
        return Model(self.name, self.version, self.run_id, final.pipeline, meta)

    @property
    def leaderboard(self) -> "pd.DataFrame":
        """Every trial, best first: family, status, score, training seconds, params."""
        return self.trained.search.leaderboard()

    @property
    def pareto(self) -> "pd.DataFrame":
        """Training seconds against validation score, per family and sample size (``tune.sample_sizes``;
        without them, the trials on the full training set); ``pareto`` marks the non-dominated rows."""
        import pandas as pd

        from mlauto.tune.curves import pareto_front

        curves = self.trained.curves
        if curves is not None and len(curves.frame):
            frame = curves.frame.drop(columns=["params"], errors="ignore")
        else:
            board = self.leaderboard
            board = board[board["status"] == "ok"]
            frame = pd.DataFrame({"family": board["family"], "fraction": 1.0,
                                  "n_train": len(self.trained.splits.train),
                                  "train_seconds": board["train_seconds"], "score": board["score"]})
        frame = frame.reset_index(drop=True)
        front = pareto_front(frame, self.trained.search.mode)
        frame["pareto"] = frame.index.isin(front.index)
        return frame

    @property
    def report(self) -> str | None:
        """The experiment's HTML report (None when it could not be written)."""
        return self.trained.report

    def serve(self, monitor: bool = True, port: int | None = None, blocking: bool = False) -> "Endpoint":
        """Serve the champion (and start its monitor, which retrains on drift); returns the endpoint.
        ``blocking=True`` serves until Ctrl-C, as the command does."""
        return serve(self.config, monitor=monitor, port=port, blocking=blocking)

    def __repr__(self) -> str:
        metric = self.summary.get("metric")
        return (f"FitResult({self.name} v{self.version}: {self.trained.final.family}, val {metric}="
                f"{self.trained.final.val_metrics.get(metric, float('nan')):.4f}, report={self.report})")


def serve(cfg: Config, monitor: bool = True, port: int | None = None, blocking: bool = False) -> "Endpoint":
    """Serve ``cfg``'s champion (with its monitor); see :meth:`FitResult.serve`."""
    from mlauto import ops
    from mlauto.context import block_until_stopped

    stages = [s for s in cfg.stages if s not in ("serve", "monitor")] + ["serve"] + (["monitor"] if monitor else [])
    cfg = dataclasses.replace(cfg, stages=stages)
    if port is not None:
        cfg = dataclasses.replace(cfg, serve=dataclasses.replace(cfg.serve, port=port))
    cfg = ops.with_admin_token(cfg)
    ensure_ray(cfg)
    if monitor:
        ops.start_monitoring(cfg)
    url = ops.serve_version(cfg, None)  # follows the champion alias
    endpoint = Endpoint(url, cfg, monitored=monitor)
    if blocking:
        try:
            block_until_stopped(url)
        finally:
            endpoint.stop()
    return endpoint


@dataclass
class Endpoint:
    """A served model: ``predict`` rows, send ``feedback`` labels, read ``drift``, ``stop`` it."""

    url: str
    config: Config
    monitored: bool = True
    timeout_s: float = 60.0

    @property
    def admin_token(self) -> str | None:
        return self.config.serve.admin_token

    def _call(self, method: str, route: str, **kwargs: Any) -> Any:
        import requests

        response = requests.request(method, self.url + route, timeout=self.timeout_s, **kwargs)
        if response.status_code >= 400:
            raise MlautoError(f"{method} {route} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def predict(self, rows: Any) -> dict[str, Any]:
        """POST ``rows`` (a DataFrame, a record or a list of them) to ``/predict``; returns its answer:
        ``request_id``, ``predictions`` and, for a classifier, ``probabilities``."""
        import pandas as pd

        if isinstance(rows, pd.DataFrame):  # to_json: NaN becomes null, numpy types plain numbers
            return self._call("POST", "/predict", data=rows.to_json(orient="records"),
                              headers={"Content-Type": "application/json"})
        return self._call("POST", "/predict", json=rows)

    def feedback(self, request_id: str, labels: Any) -> dict[str, Any]:
        """The true labels of a ``/predict`` request's records, in order."""
        import numpy as np

        values = np.asarray(labels).tolist() if not isinstance(labels, list) else labels
        values = values if isinstance(values, list) else [values]
        return self._call("POST", "/feedback", json={"request_id": request_id, "labels": values})

    def drift(self) -> dict[str, Any]:
        """The monitor's status (``GET /drift``): windows tested, drift, performance, retrains."""
        return self._call("GET", "/drift")

    def report(self) -> str:
        """The monitor report (``GET /report``): the drift timeline as a self-contained HTML page;
        ``IPython.display.HTML(endpoint.report())`` shows it in a notebook."""
        import requests

        response = requests.get(self.url + "/report", timeout=self.timeout_s)
        if response.status_code >= 400:
            raise MlautoError(f"GET /report answered {response.status_code}: {response.text[:500]}")
        return response.text

    def model(self) -> dict[str, Any]:
        """The version being served (``GET /model``)."""
        return self._call("GET", "/model")

    def stop(self) -> None:
        """Delete the Serve application and stop the monitor (Ray keeps running, for the next fit)."""
        from ray import serve

        from mlauto.monitor import stop_monitor

        serve.delete(self.config.serve.app_name)
        if self.monitored:
            stop_monitor(self.config.monitor.actor_name, self.config.cluster.namespace)
        logger.info("stopped %s", self.url)


__all__ = ["Endpoint", "FitResult", "Model", "compose", "ensure_ray", "fit", "load", "serve"]
