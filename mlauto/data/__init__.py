"""Ingestion (Ray Data sources, fingerprinted snapshots), quarantine and splits."""

from mlauto.data.snapshot import Snapshot, fingerprint, ingest
from mlauto.data.sources import SOURCES, FileSource, SampleSource, Source, make_source
from mlauto.data.clean import CleanResult, CleanRules, ColumnRule, clean_dataset, clean_frame
from mlauto.data.profile import ProfileAccumulator, check_schema, schema_from_profile
from mlauto.data.split import Splits, make_splits, prepare_snapshot, split

__all__ = [
    "SOURCES", "FileSource", "SampleSource", "Snapshot", "Source", "Splits",
    "fingerprint", "ingest", "make_source", "make_splits",
    "CleanResult", "CleanRules", "ColumnRule", "ProfileAccumulator", "check_schema", "clean_dataset", "clean_frame",
    "prepare_snapshot", "schema_from_profile", "split",
]
