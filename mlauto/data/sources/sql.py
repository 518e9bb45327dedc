"""Rows of a table or a query from an SQL database, read through Ray Data."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

import ray.data

from mlauto.data.sources.base import SOURCES, Source
from mlauto.errors import ConfigError, DataError

if TYPE_CHECKING:
    from mlauto.config.schema import DataConf

logger = logging.getLogger(__name__)

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

    @classmethod
    def resolve(cls, data: "DataConf") -> "DataConf":
        if data.url:  # a relative SQLite file, as seen from here
            return dataclasses.replace(data, url=absolute_url(data.url))
        return data

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
