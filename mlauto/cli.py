"""The Hydra launcher: composes and validates the config, builds the run, hands it to the pipeline.

This is the only place that reads a DictConfig; library code gets plain dataclasses and objects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mlauto.config import Config, validate
from mlauto.config.store import CONF_PATH, register_configs
from mlauto.errors import ConfigError, MlautoError
from mlauto.registry import import_plugins

logger = logging.getLogger("mlauto")


def to_config(cfg: DictConfig) -> Config:
    """DictConfig -> validated :class:`Config`, with user paths made absolute.

    Trials and retrain tasks run in other working directories, so relative paths would break there.
    """
    from mlauto.data import SOURCES, resolve_data
    from mlauto.features import selector_options, transform_options
    from mlauto.models import FAMILIES
    from mlauto.monitor import DETECTORS

    conf: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    import_plugins(conf.plugins)  # a user's families, sources, detectors: registered before validation
    validate(conf, families=FAMILIES.names(), sources=SOURCES.names(), detectors=DETECTORS.names(),
             transforms=transform_options(), selectors=selector_options())
    accepted = DETECTORS.get(conf.monitor.detector).OPTIONS
    unknown = sorted(set(conf.monitor.options) - set(accepted))
    if unknown:
        raise ConfigError("monitor.options", unknown, sorted(accepted) or "no options",
                          f"options of detector {conf.monitor.detector!r}")
    conf.root = os.path.abspath(conf.root)
    conf.data = resolve_data(conf.data)  # the selected source's own path fixing (data.path, data.url)
    for key in ("input", "output"):
        value = getattr(conf.predict, key)
        if value and "://" not in value:
            setattr(conf.predict, key, os.path.abspath(os.path.expanduser(value)))
    return conf


def submit_job(address: str, argv: list[str]) -> int:
    """Send the same command to a cluster as a Ray job (``cluster.address=http://head:8265``)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from mlauto.config.store import PACKAGE_DIR

    args = [a for a in argv if not a.startswith("cluster.address=")] + ["cluster.address=auto"]
    entrypoint = "python -m mlauto " + " ".join(shlex.quote(a) for a in args)
    client = JobSubmissionClient(address)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env={"working_dir": str(PACKAGE_DIR.parent), "excludes": [".venv", "runs", ".git", "outputs"]},
    )
    logger.info("submitted job %s to %s: %s", job_id, address, entrypoint)

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)  # the job's own console output, as it comes
            sys.stdout.flush()

    asyncio.run(follow())
    status = client.get_job_status(job_id)
    logger.info("job %s ended: %s", job_id, status)
    return 0 if status == JobStatus.SUCCEEDED else 1


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        conf = to_config(cfg)
    except MlautoError as exc:
        logger.error("%s", exc)
        sys.exit(2)
    address = conf.cluster.address
    if address and address.startswith(("http://", "https://")):
        sys.exit(submit_job(address, sys.argv[1:]))
    from mlauto import ops, pipeline

    try:
        output_dir = HydraConfig.get().runtime.output_dir
        if conf.action == "run":
            summary = pipeline.run(conf, output_dir)
            logger.info("done: %s", {k: summary.get(k) for k in ("best_family", "model_version", "endpoint")})
        elif conf.action == "events":
            for event in manage(conf):  # the command's output: one JSON object per line
                sys.stdout.write(json.dumps(event, default=str) + "\n")
        elif conf.action == "predict":
            summary = predict(conf)
            sys.stdout.write(json.dumps(summary, default=str) + "\n")  # the command's output
        elif conf.action == "serve_config":
            ops.serve_config(conf, os.path.join(output_dir, "serve_config.yaml"))
        elif conf.action in ("runs", "compare"):
            sys.stdout.write(manage(conf) + "\n")  # the command's output: a table
        elif conf.action == "reproduce":
            from mlauto.reproduce import format_reproduce

            result = manage(conf)
            sys.stdout.write(format_reproduce(result) + "\n")
            if not result["ok"]:
                sys.exit(1)
        else:
            logger.info("%s: %s", conf.action, manage(conf))
    except MlautoError as exc:
        logger.error("%s", exc)
        sys.exit(1)


def manage(conf: Config) -> Any:
    """``action=promote version=N`` or ``action=rollback``: move the aliases; with ``cluster.address``,
    also swap the running endpoint and monitor in that cluster. ``action=events``: the monitor's
    events (from the running actor with ``cluster.address``, else from its log under ``root``).
    ``action=snapshots`` lists the stored snapshots; ``action=schedule|schedule_status|schedule_stop``
    manage scheduled ingestion. ``action=runs`` and ``action=compare runs=[A,B]`` return a table of the
    tracked runs; ``action=reproduce run_id=ID`` re-runs a trial from its record (old vs new score)."""
    from mlauto import ops, runtime

    if conf.action == "snapshots":
        return ops.snapshots(conf)
    if conf.action in ("runs", "compare", "reproduce"):
        return tracked_runs(conf)
    if conf.action in ("schedule", "schedule_status", "schedule_stop"):
        return ops.manage_schedule(conf)
    if conf.cluster.address:
        runtime.connect(conf.cluster.address, conf.cluster.namespace)
    if conf.action == "events":
        return ops.monitor_events(conf, limit=10000)
    if conf.action == "promote":
        return ops.promote_version(conf, str(conf.version))
    return ops.rollback(conf)


def tracked_runs(conf: Config) -> Any:
    """``runs`` / ``compare``: a table (text); ``reproduce``: the comparison of old and new score (dict)."""
    from mlauto import runtime
    from mlauto.pipeline import tracking_uri
    from mlauto.track.runs import compare_runs, format_compare, format_runs, list_runs

    uri, experiment = tracking_uri(conf), conf.tracking.experiment or conf.name
    if conf.action == "runs":
        return format_runs(list_runs(uri, experiment))
    if conf.action == "compare":
        return format_compare(compare_runs(uri, list(conf.runs), experiment))
    import ray

    from mlauto.reproduce import load_record, reproduce, resolve_data

    record = load_record(uri, str(conf.run_id), experiment)  # an unknown id or lost data fail before Ray starts
    resolve_data(record, conf.root)
    c = conf.cluster
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)  # the data is read through Ray Data
    try:
        return reproduce(uri, record.run_id, conf.root, experiment, record=record)
    finally:
        if owns_ray:
            ray.shutdown()


def predict(conf: Config) -> dict[str, Any]:
    """``action=predict predict.input=PATH [version=N]``: batch scoring through Ray Data, on the local Ray
    this command starts (and stops) or on ``cluster.address``."""
    import ray

    from mlauto import runtime
    from mlauto.pipeline import model_name, tracking_uri
    from mlauto.serve.batch import input_files, score_file
    from mlauto.track import BundleLoader

    p, c = conf.predict, conf.cluster
    input_files(p.input)  # a missing path or model fails before Ray starts
    BundleLoader(tracking_uri(conf), model_name(conf)).resolve(conf.version)
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)
    try:
        result = score_file(p.input, tracking_uri=tracking_uri(conf), model_name=model_name(conf),
                            version=conf.version, output=p.output, fmt=p.format, batch_size=p.batch_size,
                            workers=p.workers, worker_cpus=p.worker_cpus)
    finally:
        if owns_ray:
            ray.shutdown()
    return result.to_dict()


def main() -> None:
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args()  # models=all takes in the model files of the user's folders
    register_configs(args.overrides, args.config_dir)
    _hydra_main()


if __name__ == "__main__":
    main()
