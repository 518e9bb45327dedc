"""Ingestion (Ray Data sources, fingerprinted snapshots), quarantine and splits."""

from mlauto.data.snapshot import Snapshot, fingerprint, ingest
from mlauto.data.sources import SOURCES, FileSource, SampleSource, Source, make_source
from mlauto.data.split import Splits, make_splits

__all__ = [
    "SOURCES", "FileSource", "SampleSource", "Snapshot", "Source", "Splits",
    "fingerprint", "ingest", "make_source", "make_splits",
]
