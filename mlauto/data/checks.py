"""Config checks of the data stage: ``data.*`` (source, SQL, format), ``ingest.*`` and ``prepare.*``.

Registered with :func:`mlauto.config.checks.check` when this module is imported (the launcher imports it).
"""

from __future__ import annotations

import dataclasses

from mlauto.config.checks import check
from mlauto.config.schema import ColumnRule, ColumnType, Config, OnInvalid, SplitMethod, section_from_dict
from mlauto.data.sources import SOURCES
from mlauto.errors import ConfigError

DATA_FORMATS = ("csv", "parquet", "json")  # data.format; null: from the file's suffix
NUMERIC_IMPUTE = ("mean", "median")


def cron_is_valid(expression: str) -> bool:
    from croniter import croniter

    return bool(croniter.is_valid(expression))


@check
def check_source(cfg: Config) -> None:
    """``data.source`` names a registered source; ``data.format`` a known format."""
    d = cfg.data
    if d.source != "auto" and d.source not in SOURCES:
        raise ConfigError("data.source", d.source, ["auto", *SOURCES.names()])
    if d.source == "sample" and d.path:
        raise ConfigError("data.source", "sample", ["auto", "file"],
                          f"data.path={d.path!r} is set but the sample source ignores it")
    _check_sql(cfg)
    if d.format is not None and d.format not in DATA_FORMATS:
        raise ConfigError("data.format", d.format, ["null (infer)", *DATA_FORMATS])


def _check_sql(cfg: Config) -> None:
    """The sql source needs a URL and exactly one of query / table; other sources take neither."""
    d = cfg.data
    source = d.source if d.source != "auto" else ("sql" if d.url else "file" if d.path else "sample")
    if source != "sql":
        for key in ("url", "query", "table"):
            if getattr(d, key) is not None:
                raise ConfigError("data.source", d.source, ["sql"], f"data.{key} is set but the {source} source "
                                  "ignores it; use data=sql (or clear it)")
        return
    if not d.url:
        raise ConfigError("data.url", d.url, "an SQLAlchemy URL, e.g. sqlite:///data.db or "
                          "postgresql://user:password@host:5432/db", "the sql source needs data.url")
    if "://" not in d.url:
        raise ConfigError("data.url", d.url, "an SQLAlchemy URL, e.g. sqlite:///data.db or "
                          "postgresql://user:password@host:5432/db")
    if d.path:
        raise ConfigError("data.path", d.path, "null", "the sql source reads data.url; clear data.path")
    if (d.query is None) == (d.table is None):
        raise ConfigError("data.query/data.table", {"query": d.query, "table": d.table}, "exactly one of them",
                          "set data.query='SELECT ...' or data.table=NAME, not both")
    for key in ("query", "table"):
        if getattr(d, key) is not None and not str(getattr(d, key)).strip():
            raise ConfigError(f"data.{key}", getattr(d, key), "a non-empty string")


@check
def check_ingest(cfg: Config) -> None:
    """``ingest.*``: a valid cron and time zone, a schedule for action=schedule, sizes."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    i = cfg.ingest
    if i.schedule is not None and not cron_is_valid(i.schedule):
        raise ConfigError("ingest.schedule", i.schedule, "a cron expression: 5 fields (min hour day month weekday), "
                          "or 6 with seconds last, e.g. '*/5 * * * *' or '* * * * * */10'")
    if cfg.action == "schedule" and not i.schedule:
        raise ConfigError("ingest.schedule", i.schedule, "a cron expression",
                          "action=schedule needs ingest.schedule, e.g. ingest.schedule='*/5 * * * *'")
    try:
        ZoneInfo(i.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("ingest.timezone", i.timezone, "an IANA time zone, e.g. UTC or Europe/Paris") from None
    if i.keep_snapshots is not None and i.keep_snapshots < 1:
        raise ConfigError("ingest.keep_snapshots", i.keep_snapshots, "null (keep all) or an integer >= 1")
    if not i.actor_name:
        raise ConfigError("ingest.actor_name", i.actor_name, "a non-empty name")


@check
def check_prepare(cfg: Config) -> None:
    """Split sizes, method and its column, imputation, profile sample."""
    p = cfg.prepare
    for key in ("test_size", "val_size"):
        value = getattr(p, key)
        if not 0.0 < value < 0.5:
            raise ConfigError(f"prepare.{key}", value, "a fraction in (0, 0.5)")
    if p.numeric_impute not in NUMERIC_IMPUTE:
        raise ConfigError("prepare.numeric_impute", p.numeric_impute, NUMERIC_IMPUTE)
    if p.split == SplitMethod.group and not p.group_column:
        raise ConfigError("prepare.group_column", p.group_column, "a column name", "prepare.split=group needs it")
    if p.split == SplitMethod.time and not p.time_column:
        raise ConfigError("prepare.time_column", p.time_column, "a column name", "prepare.split=time needs it")
    if p.profile_sample_rows < 100:
        raise ConfigError("prepare.profile_sample_rows", p.profile_sample_rows, "an integer >= 100")


@check
def check_clean(cfg: Config) -> None:
    """``prepare.clean``: the schema types its keys; here the ranges."""
    clean = cfg.prepare.clean
    if not 0.5 <= clean.numeric_threshold <= 1.0:
        raise ConfigError("prepare.clean.numeric_threshold", clean.numeric_threshold, "a fraction in [0.5, 1]")
    keys = [f.name for f in dataclasses.fields(ColumnRule)]
    for name, rule in clean.columns.items():
        key = f"prepare.clean.columns.{name}"
        if not isinstance(rule, dict):
            raise ConfigError(key, rule, f"a mapping with keys {', '.join(keys)}")
        for k in rule:
            if k not in keys:
                raise ConfigError(f"{key}.{k}", rule[k], keys, "unknown column rule")
        for k, choice in (("type", ColumnType), ("on_invalid", OnInvalid)):
            if rule.get(k) is not None and rule[k] not in choice.values():
                raise ConfigError(f"{key}.{k}", rule[k], choice.values())
        rule = section_from_dict(ColumnRule, rule)
        rng = rule.range
        if rng is not None:
            rng = list(rng)
            ok = len(rng) == 2 and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                       for v in rng)
            if not ok or (rng[0] is not None and rng[1] is not None and rng[0] > rng[1]):
                raise ConfigError(f"{key}.range", rng, "[low, high] with low <= high (null: open end)")
        if rule.categories is not None and not rule.categories:
            raise ConfigError(f"{key}.categories", list(rule.categories), "a non-empty list of allowed values")
