"""Data sources: each one a module with a class registered by name in ``SOURCES`` (imported below)
that returns a Ray Dataset."""

from mlauto.data.sources import file, sample, sql  # noqa: F401
from mlauto.data.sources.base import SOURCES, Source, make_source, resolve_data, selected_source
from mlauto.data.sources.file import FileSource, matching_files
from mlauto.data.sources.sample import SAMPLES, SampleSource
from mlauto.data.sources.sql import SQLConnect, SQLSource, absolute_url

__all__ = ["SAMPLES", "SOURCES", "FileSource", "SQLConnect", "SQLSource", "SampleSource", "Source", "absolute_url",
           "make_source", "matching_files", "resolve_data", "selected_source"]
