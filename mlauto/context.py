"""A run's context: where its files go, its tracking URI and model name, the model loader and data source.

Every layer above the stages (training, retraining, operations, the launcher) derives these from the
config the same way, here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from mlauto import storage
from mlauto.config import Config, validate
from mlauto.data import Source, make_source, resolve_data
from mlauto.registry import import_plugins
from mlauto.track import BundleLoader, sqlite_uri

if TYPE_CHECKING:
    from omegaconf import DictConfig

logger = logging.getLogger(__name__)


# The modules that register config checks (mlauto.config.checks.check), in the order their checks run.
CHECK_MODULES = ("mlauto.track.checks", "mlauto.data.checks", "mlauto.features.checks", "mlauto.models.checks",
                 "mlauto.tune.checks", "mlauto.serve.checks", "mlauto.monitor.checks", "mlauto.runtime")


def load_checks() -> None:
    """Import every module that registers config checks (the config package imports no stage)."""
    for name in CHECK_MODULES:
        importlib.import_module(name)


def to_config(cfg: "DictConfig") -> Config:
    """DictConfig -> validated :class:`Config`, with user paths made absolute.

    Trials and retrain tasks run in other working directories, so relative paths would break there.
    The launcher and the Python API both build their config here.
    """
    from omegaconf import OmegaConf

    conf: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    import_plugins(conf.plugins)  # a user's families, sources, detectors: registered before validation
    conf.families = included_families(conf)
    load_checks()
    validate(conf)
    conf.root = storage.normalize(conf.root)  # absolute, or an object-store URI (s3://, gs://)
    conf.data = resolve_data(conf.data)  # the selected source's own path fixing (data.path, data.url)
    for key in ("input", "output"):
        value = getattr(conf.predict, key)
        if value:
            setattr(conf.predict, key, storage.normalize(value))
    return conf


def included_families(conf: Config) -> dict[str, Any]:
    """``conf.families`` narrowed to ``models.include``; when it is null, all but the opt-in ones."""
    include = conf.models.include
    if include is None:
        left = sorted(name for name, fam in conf.families.items() if fam.opt_in)
        if left:
            # debug, not info: this runs for every action, and `action=runs` prints its table to stdout
            logger.debug("opt-in model families left out (name them in models.include to search them): %s",
                         ", ".join(left))
        return {name: fam for name, fam in conf.families.items() if not fam.opt_in}
    unknown = [name for name in include if name not in conf.families]
    if unknown or not include:
        from mlauto.errors import ConfigError

        raise ConfigError("models.include", list(include), sorted(conf.families),
                          "name families the models group composed (models=all has every one)")
    return {name: conf.families[name] for name in include}


def build_config(overrides: Sequence[str] = (), config_dir: str | None = None) -> Config:
    """The validated config for ``overrides``, exactly as ``mlauto OVERRIDES`` builds it."""
    from mlauto.config.store import compose

    return to_config(compose(overrides, config_dir))


@dataclass
class Paths:
    root: str

    def __post_init__(self) -> None:
        self.root = storage.normalize(self.root)  # a local path made absolute, or an object-store URI

    @property
    def snapshots(self) -> str:
        return storage.join(self.root, "snapshots")

    @property
    def quarantine(self) -> str:
        return storage.join(self.root, "quarantine")

    @property
    def clean(self) -> str:
        return storage.join(self.root, "clean")

    @property
    def profiles(self) -> str:
        return storage.join(self.root, "profiles")

    @property
    def ray_results(self) -> str:
        return storage.join(self.root, "ray_results")

    @property
    def artifacts(self) -> str:
        return storage.join(self.root, "mlartifacts")

    def schedule(self, actor_name: str) -> str:
        return storage.join(self.root, "schedule", actor_name)


def tracking_uri(cfg: Config) -> str:
    return cfg.tracking.uri or sqlite_uri(cfg.root)


def model_name(cfg: Config) -> str:
    return cfg.tracking.model_name or f"mlauto-{cfg.name}"


def loader_for(cfg: Config) -> BundleLoader:
    return BundleLoader(tracking_uri(cfg), model_name(cfg))


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    logger.info("== stage %s", name)
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)
    logger.info("== stage %s done in %.1fs", name, timings[name])



def data_source(cfg: Config) -> Source:
    """The configured source: its constructor takes the ``data.*`` keys it names."""
    options = dataclasses.asdict(cfg.data)
    return make_source(options.pop("source"), **options)



def write_summary(summary: dict[str, Any], output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "summary.json")
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    logger.info("summary written to %s", path)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def block_until_stopped(what: str,
                        message: str = "serving at %s (POST /predict, GET /model, GET /drift, GET /health)") -> None:
    """Wait for Ctrl-C or SIGTERM (docker stop). Tune leaves its own SIGINT handler behind, so set ours."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    logger.info(message + ". Ctrl-C to stop.", what)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("stopping")



__all__ = ["CHECK_MODULES", "Paths", "block_until_stopped", "build_config", "load_checks", "to_config", "data_source", "loader_for", "model_name", "stage", "tracking_uri",
           "write_summary"]
