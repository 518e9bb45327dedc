"""Ingestion (Ray Data sources, fingerprinted snapshots, schedules), cleaning with quarantine,
profiles and schema checks, and splits."""

from mlauto.data.clean import CleanResult, clean_dataset, clean_frame, clean_rules
from mlauto.data.profile import ProfileAccumulator, check_schema, schema_from_profile
from mlauto.data.schedule import IngestScheduler, schedule_status, start_schedule, stop_schedule
from mlauto.data.snapshot import (
    Snapshot,
    current_fingerprint,
    fingerprint,
    format_snapshots,
    ingest,
    list_snapshots,
    prune_snapshots,
)
from mlauto.data.sources import (
    SOURCES,
    FileSource,
    SampleSource,
    Source,
    SQLSource,
    absolute_url,
    make_source,
    resolve_data,
)
from mlauto.data.split import PrepareDirs, Splits, make_splits, prepare_snapshot, split

__all__ = [
    "SOURCES", "CleanResult", "FileSource", "IngestScheduler", "ProfileAccumulator",
    "SQLSource", "SampleSource", "Snapshot", "Source", "Splits", "absolute_url", "check_schema", "clean_dataset",
    "clean_frame", "clean_rules", "current_fingerprint", "fingerprint", "format_snapshots", "ingest",
    "list_snapshots", "make_source", "make_splits", "PrepareDirs", "prepare_snapshot", "prune_snapshots", "resolve_data",
    "schedule_status", "schema_from_profile", "split", "start_schedule", "stop_schedule",
]
