"""Data sources: each one a module with a class registered by name in ``SOURCES`` (every module here is imported)
that returns a Ray Dataset."""

from mlauto.registry import import_members
from mlauto.data.sources.base import SOURCES, Source, make_source, resolve_data, selected_source
from mlauto.data.sources.file import FileSource, matching_files
from mlauto.data.sources.sample import SAMPLES, SampleSource
from mlauto.data.sources.sql import SQLConnect, SQLSource, absolute_url

import_members(__name__, __path__)  # every module here is a member: adding one is adding a file

__all__ = ["SAMPLES", "SOURCES", "FileSource", "SQLConnect", "SQLSource", "SampleSource", "Source", "absolute_url",
           "make_source", "matching_files", "resolve_data", "selected_source"]
