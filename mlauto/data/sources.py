"""Data sources: each one is a class registered by name that returns a Ray Dataset."""

from __future__ import annotations

import abc
import glob
import inspect
import logging
import os
from typing import Any, Iterable

import ray.data

from mlauto.errors import ConfigError, DataError
from mlauto.registry import Registry

logger = logging.getLogger(__name__)

SOURCES: Registry["Source"] = Registry("data source", "data.source")


class Source(abc.ABC):
    """Reads raw rows into a Ray Dataset. ``describe`` names the source in lineage records.

    A new source is one registered subclass plus one ``conf/data/<name>.yaml``: its constructor's
    arguments are filled from the ``data.*`` keys of the same names (see :func:`make_source`).
    """

    @abc.abstractmethod
    def read(self) -> ray.data.Dataset: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]: ...

    @classmethod
    def from_options(cls, source: str, options: dict[str, Any]) -> "Source":
        """Build from ``data.*`` values: the keys the constructor names; a missing required one fails."""
        params = inspect.signature(cls.__init__).parameters
        kwargs = {}
        for pname, param in params.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = options.get(pname)
            if value is not None:
                kwargs[pname] = value
            elif param.default is param.empty:
                raise ConfigError(f"data.{pname}", value, hint=f"the {source} source needs data.{pname}")
        return cls(**kwargs)


# scikit-learn's bundled sets: breast_cancer (binary), digits, iris, wine (multiclass), diabetes (regression)
SAMPLES = ("breast_cancer", "diabetes", "digits", "iris", "wine")


@SOURCES.register("sample")
class SampleSource(Source):
    """A dataset bundled with scikit-learn, so the quickstart needs no download."""

    def __init__(self, name: str = "breast_cancer", target: str = "target") -> None:
        self.name = name
        self.target = target

    def read(self) -> ray.data.Dataset:
        from sklearn import datasets

        if self.name not in SAMPLES:
            raise ConfigError("data.name", self.name, SAMPLES, "unknown built-in sample")
        frame = getattr(datasets, f"load_{self.name}")(as_frame=True).frame
        frame = frame.rename(columns={"target": self.target})
        # Column names with spaces are awkward in JSON requests and SQL: use snake case.
        frame.columns = [str(c).strip().replace(" ", "_") for c in frame.columns]
        return ray.data.from_pandas(frame)

    def describe(self) -> dict[str, Any]:
        return {"source": "sample", "name": self.name}


_READERS = {"csv": ray.data.read_csv, "parquet": ray.data.read_parquet, "json": ray.data.read_json}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json"}


def matching_files(path: str, suffixes: Iterable[str], key: str, accepted: str, names: str | None = None) -> list[str]:
    """The files behind ``path``: itself, the files of a folder that end in one of ``suffixes``, or a
    glob's files. None fails naming ``key``; ``accepted`` words what to give ("a CSV or Parquet"),
    ``names`` the suffixes looked for (default: all of them)."""
    full = os.path.abspath(os.path.expanduser(path))
    if any(ch in full for ch in "*?["):
        files = sorted(f for f in glob.glob(full) if os.path.isfile(f))
    elif os.path.isdir(full):
        files = sorted(os.path.join(full, f) for f in os.listdir(full)
                       if os.path.splitext(f)[1].lower() in suffixes and os.path.isfile(os.path.join(full, f)))
    elif os.path.isfile(full):
        files = [full]
    else:
        raise DataError(f"{key} {path!r} does not exist; give {accepted} file, a folder or a glob")
    if not files:
        raise DataError(f"{key} {path!r} matches no {names or '/'.join(sorted(suffixes))} file")
    return files


@SOURCES.register("file")
class FileSource(Source):
    """A CSV, Parquet or JSON-lines file, a folder of them, or a glob."""

    def __init__(self, path: str, format: str | None = None) -> None:
        self.path = path
        self.format = format

    def _files(self) -> list[str]:
        return matching_files(self.path, _SUFFIXES, "data.path", "a")

    def _format(self, files: list[str]) -> str:
        if self.format:
            return self.format
        kinds = {_SUFFIXES.get(os.path.splitext(f)[1].lower()) for f in files}
        if len(kinds) != 1 or None in kinds:
            raise DataError(
                f"cannot infer the format of {self.path!r} (suffixes found: {sorted(map(str, kinds))}); "
                "set data.format to csv, parquet or json"
            )
        return kinds.pop()

    def read(self) -> ray.data.Dataset:
        files = self._files()
        fmt = self._format(files)
        logger.info("reading %d %s file(s) from %s", len(files), fmt, self.path)
        for f in files:
            if os.path.getsize(f) == 0:
                raise DataError(f"{f} is empty; remove it or point data.path at a file with rows")
        return _READERS[fmt](files)

    def describe(self) -> dict[str, Any]:
        return {"source": "file", "path": os.path.abspath(self.path), "format": self.format}


def make_source(source: str, **options: Any) -> Source:
    """Build the configured source from the ``data.*`` values (``name=``, ``path=``, ``url=``, ...).

    ``auto`` picks ``sql`` when ``url`` is set, ``file`` when ``path`` is set, else the bundled sample.
    """
    if source == "auto":
        source = "sql" if options.get("url") else "file" if options.get("path") else "sample"
    if source == "file" and not options.get("path"):
        raise ConfigError("data.path", options.get("path"), "a file, folder or glob", "the file source needs data.path")
    return SOURCES.get(source).from_options(source, options)


# -- SQL ---------------------------------------------------------------------------------------


def _url(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError("data.url", url, "an SQLAlchemy URL, e.g. sqlite:///data.db or "
                          "postgresql://user:password@host:5432/db", str(exc)) from None


def absolute_url(url: str) -> str:
    """A SQLite URL with a relative file path made absolute (tasks and retrains run in other folders)."""
    parsed = _url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return url
    if os.path.isabs(database):
        return url
    return parsed.set(database=os.path.abspath(os.path.expanduser(database))).render_as_string(hide_password=False)


class SQLConnect:
    """A picklable DB-API connection factory for ``ray.data.read_sql``: each read task opens its own
    connection through SQLAlchemy (any dialect it knows, driver installed), without a pool."""

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s

    def engine(self) -> Any:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        url = _url(self.url)
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
            connect_args["connect_timeout"] = self.connect_timeout_s  # an unreachable host fails, not hangs
        try:
            return sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
            raise DataError(
                f"data.url {url.render_as_string(hide_password=True)!r} needs a database driver that is not "
                f"installed ({exc}); install it (e.g. pip install 'psycopg[binary]' for postgresql://)"
            ) from None

    def __call__(self) -> Any:
        return self.engine().raw_connection()


@SOURCES.register("sql")
class SQLSource(Source):
    """Rows of a ``table`` or the result of a ``query`` from an SQL database given by an SQLAlchemy URL.

    Read with ``ray.data.read_sql``: one read task, unless ``shard_keys`` names columns to hash and
    the database has the functions Ray uses for that (MOD, ABS, MD5; PostgreSQL and MySQL do).
    """

    def __init__(self, url: str, query: str | None = None, table: str | None = None,
                 shard_keys: list[str] | None = None) -> None:
        self.url = url
        self.query = query
        self.table = table
        self.shard_keys = shard_keys

    def _check_target(self) -> None:
        if (self.query is None) == (self.table is None):
            raise ConfigError("data.query/data.table", {"query": self.query, "table": self.table},
                              "exactly one of them", "the sql source reads either a query or a whole table")

    def _display_url(self) -> str:
        return _url(self.url).render_as_string(hide_password=True)

    def _sql(self, conn: Any) -> str:
        import sqlalchemy

        if self.query is not None:
            return self.query.strip().rstrip(";").strip()
        schema, _, name = str(self.table).rpartition(".")
        inspector = sqlalchemy.inspect(conn)
        if not inspector.has_table(name, schema=schema or None):
            tables = inspector.get_table_names(schema=schema or None)
            raise DataError(f"table {self.table!r} does not exist in {self._display_url()}; set data.table to one "
                            f"of: {', '.join(tables) or '(no tables)'}")
        quote = conn.dialect.identifier_preparer.quote
        return "SELECT * FROM " + ".".join(quote(part) for part in (schema, name) if part)

    def read(self) -> ray.data.Dataset:
        import sqlalchemy

        self._check_target()
        url = absolute_url(self.url)
        parsed = _url(url)
        database = parsed.database
        if (parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
                and not database.startswith("file:") and not os.path.isfile(database)):
            # SQLite would silently create an empty database here.
            raise DataError(f"SQLite database file {database} does not exist; fix data.url")
        connect = SQLConnect(url)
        engine = connect.engine()
        try:
            try:
                conn = engine.connect()
            except sqlalchemy.exc.DBAPIError as exc:
                raise DataError(f"cannot connect to {self._display_url()}: {str(exc.orig).strip()}; check data.url "
                                "(host, port, database, credentials) and that the server is running") from None
            with conn:
                sql = self._sql(conn)
                try:  # fails now, with the database's own message, rather than inside a read task
                    conn.exec_driver_sql(f"SELECT * FROM ({sql}) AS mlauto_check WHERE 1 = 0").close()
                except sqlalchemy.exc.DBAPIError as exc:
                    raise DataError(f"the database {self._display_url()} refused {sql!r}: "
                                    f"{str(exc.orig).strip()}; fix data.query") from None
        finally:
            engine.dispose()
        logger.info("reading %s from %s", "the query" if self.query is not None else f"table {self.table}",
                    self._display_url())
        return ray.data.read_sql(sql, connect, shard_keys=list(self.shard_keys) if self.shard_keys else None)

    def describe(self) -> dict[str, Any]:
        return {"source": "sql", "url": self._display_url(), "query": self.query, "table": self.table}

