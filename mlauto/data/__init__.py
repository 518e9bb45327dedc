"""Ingestion (Ray Data sources, fingerprinted snapshots), quarantine and splits."""

from mlauto.data.snapshot import Snapshot, fingerprint, ingest
from mlauto.data.sources import SOURCES, FileSource, SampleSource, Source, make_source
from mlauto.data.split import Splits, make_splits
from mlauto.data.snapshot import current_fingerprint, format_snapshots, list_snapshots, prune_snapshots
from mlauto.data.sources import SQLSource, absolute_url
from mlauto.data.schedule import IngestScheduler, schedule_status, start_schedule, stop_schedule

__all__ = [
    "SOURCES", "FileSource", "SampleSource", "Snapshot", "Source", "Splits",
    "fingerprint", "ingest", "make_source", "make_splits",
]
__all__ += [
    "IngestScheduler", "SQLSource", "absolute_url", "current_fingerprint", "format_snapshots", "list_snapshots",
    "prune_snapshots", "schedule_status", "start_schedule", "stop_schedule",
]
