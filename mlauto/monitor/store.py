"""The monitor's database (SQLAlchemy): served traffic and its labels, events, small keyed state,
retrains and the history of every test, in SQLite on one machine or PostgreSQL on a cluster.

Why a database: a restarted monitor (on this node or another) resumes from it, every write is one
transaction (a killed actor leaves either the whole call or none of it), and reads are bounded
(events and history from the tail, counters kept in the state table, no full-table counts).
Several monitors may share one database (tables are prefixed ``mlauto_monitor_`` and keyed by the
monitor's name), next to MLflow's tables in the tracking server's PostgreSQL.

A record that does not decode (bad JSON, a torn value) is skipped and counted, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlauto import storage
from mlauto.errors import ConfigError
from mlauto.redact import redact_url

logger = logging.getLogger(__name__)

PREFIX = "mlauto_monitor_"
metadata = sa.MetaData()

# Served rows and, once feedback arrives, their label (one row per served record).
traffic = sa.Table(
    f"{PREFIX}traffic", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("row_id", sa.String(400), nullable=False),
    sa.Column("model_version", sa.String(100)),
    sa.Column("prediction", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("record", sa.Text),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("labelled", sa.Boolean, nullable=False, default=False),
    sa.Column("label", sa.Text),
    sa.Column("correct", sa.Integer),
    sa.Column("label_time", sa.Float),
    sa.UniqueConstraint("monitor", "row_id", name=f"{PREFIX}traffic_row"),
    sa.Index(f"{PREFIX}traffic_labelled", "monitor", "labelled", "seq"),
)
events = sa.Table(
    f"{PREFIX}events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index(f"{PREFIX}events_tail", "monitor", "id"),
)
state = sa.Table(
    f"{PREFIX}state", metadata,
    sa.Column("monitor", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)
retrains = sa.Table(
    f"{PREFIX}retrains", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | finished | failed | lost
    sa.Column("handled", sa.Boolean, nullable=False, default=False),  # the monitor acted on the outcome
    sa.Column("reason", sa.Text),
    sa.Column("runner", sa.String(300)),  # the detached Ray actor's name
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("running_since", sa.Float),  # the runner began the retrain (it writes this itself)
    sa.Column("finished", sa.Float),
    sa.Column("body", sa.Text),  # the retrain's result or error, JSON
    sa.Index(f"{PREFIX}retrains_tail", "monitor", "id"),
)
history = sa.Table(
    f"{PREFIX}history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(100)),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index(f"{PREFIX}history_tail", "monitor", "id"),
)

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def default_state_url(root: str, actor_name: str) -> str:
    """``monitor.state_url: null``: a SQLite file under ``<root>/monitor/<actor_name>/`` (one machine).

    An object-store root cannot hold a SQLite file: there the URL must be given."""
    if storage.is_uri(root):
        raise ConfigError("monitor.state_url", None, "a database URL such as postgresql+psycopg://USER@HOST/DB",
                          f"root={root} is an object store, where the monitor's SQLite file cannot live; point "
                          "monitor.state_url at the tracking server's PostgreSQL (see docs/monitoring.md)")
    return f"sqlite:///{os.path.join(os.path.abspath(root), 'monitor', actor_name, 'monitor.sqlite')}"


def state_url_for(root: str, conf: Any) -> str | None:
    """The monitor's database: ``conf.state_url``, else the SQLite default; None (in memory) when
    ``conf.persist`` is false."""
    if not conf.persist:
        return None
    return conf.state_url or default_state_url(root, conf.actor_name)


def is_sqlite(url: str | None) -> bool:
    return bool(url) and url.startswith("sqlite")


def engine_for(url: str | None) -> Engine:
    """One engine per URL and process. SQLite: WAL, a busy timeout (the retrain runner writes too),
    and the file's folder created; None: a private in-memory database."""
    if url is None:
        engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                  connect_args={"check_same_thread": False})
        metadata.create_all(engine)
        return engine
    with _ENGINES_LOCK:
        if url in _ENGINES:
            return _ENGINES[url]
        if is_sqlite(url):
            path = sa.engine.make_url(url).database
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process
                cur.close()
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        try:
            metadata.create_all(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise RuntimeError(f"monitor.state_url={redact_url(url)}: cannot create the monitor's tables "
                               f"({type(exc).__name__}: {redact_url(str(exc).splitlines()[0])})") from None
        logger.info("monitor state in %s", redact_url(url))
        _ENGINES[url] = engine
        return engine


_STATEMENTS: dict[tuple[str, str, str], Any] = {}


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def insert_new(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], key: sa.Column) -> int:
    """Insert ``rows``, skipping those whose unique key is stored already; returns how many were new
    (from ``RETURNING``, so no count query). The statement is built once per dialect."""
    if not rows:
        return 0
    cache = (table.name, conn.dialect.name, "insert_new")
    if cache not in _STATEMENTS:
        _STATEMENTS[cache] = _insert(conn.dialect.name)(table).on_conflict_do_nothing().returning(key)
    return len(conn.execute(_STATEMENTS[cache], rows).all())


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    cache = (table.name, conn.dialect.name, "upsert")
    if cache not in _STATEMENTS:
        stmt = _insert(conn.dialect.name)(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        _STATEMENTS[cache] = stmt.on_conflict_do_update(index_elements=keys, set_=update)
    conn.execute(_STATEMENTS[cache], rows)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@dataclass(frozen=True)
class Retention:
    """How much the store keeps (``monitor.keep_*``); the newest records win."""

    events: int = 10_000
    history: int = 10_000
    retrains: int = 100
    unlabelled_rows: int = 100_000


class MonitorStore:
    """One monitor's rows in the database at ``url`` (None: in memory). Writes happen inside
    :meth:`transaction`; reads decode JSON and skip, and count, what does not decode."""

    def __init__(self, url: str | None, monitor: str, keep: Retention = Retention()) -> None:
        self.url, self.monitor, self.keep = url, monitor, keep
        self.engine = engine_for(url)
        self._corrupt: set[tuple[str, Any]] = set()  # (table, key) of records that did not decode
        self._since_prune = 0
        self._written: dict[str, str] = {}  # the state values as last written, to skip unchanged ones

    # -- decoding --------------------------------------------------------------------------------
    def decode(self, table: str, key: Any, text: str | None) -> Any:
        """JSON ``text``, or ``KeyError`` after counting the record as corrupt (skipped by callers)."""
        try:
            return json.loads(text) if text is not None else None
        except (TypeError, ValueError):
            self.count_corrupt(table, key)
            raise KeyError(key) from None

    def count_corrupt(self, table: str, key: Any) -> None:
        """A record that does not decode, counted once however often it is read."""
        if (table, key) not in self._corrupt:
            logger.warning("monitor %s: corrupt record %s[%s] skipped", self.monitor, table, key)
            if len(self._corrupt) < 100_000:
                self._corrupt.add((table, key))

    @property
    def corrupt_records(self) -> int:
        return len(self._corrupt)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- state -----------------------------------------------------------------------------------
    def put_state(self, conn: Connection, items: dict[str, Any]) -> None:
        """Upsert the keys whose value changed since the last write (a rolled-back transaction must call
        :meth:`forget_written`)."""
        now = time.time()
        rows = []
        for key, value in items.items():
            text = dumps(value)
            if self._written.get(key) != text:
                rows.append({"monitor": self.monitor, "key": key, "value": text, "updated": now})
                self._written[key] = text
        _upsert(conn, state, rows, ["monitor", "key"])

    def forget_written(self) -> None:
        self._written.clear()

    def load_state(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(state.c.key, state.c.value).where(state.c.monitor == self.monitor)).all()
        out: dict[str, Any] = {}
        for key, value in rows:
            try:
                out[key] = self.decode("state", key, value)
            except KeyError:
                continue
        return out

    def recount(self) -> dict[str, int]:
        """The traffic counters from the rows themselves: only when the saved counters are missing or
        corrupt, at start (never on the request path)."""
        t = traffic.c
        with self.engine.connect() as conn:
            total, labelled = conn.execute(sa.select(sa.func.count(), sa.func.count(t.label_time)).where(
                t.monitor == self.monitor)).one()
        return {"rows_joinable": int(total), "labelled_rows": int(labelled), "rows_seen": int(total)}

    # -- events and history ------------------------------------------------------------------------
    def add_events(self, conn: Connection, items: list[dict[str, Any]]) -> None:
        if items:
            conn.execute(events.insert(), [{"monitor": self.monitor, "time": e["time"], "kind": e["event"],
                                            "body": dumps(e)} for e in items])
            self._since_prune += len(items)

    def add_history(self, conn: Connection, items: list[dict[str, Any]]) -> None:
        if items:
            conn.execute(history.insert(), [{"monitor": self.monitor, "step": h["step"], "time": h["time"],
                                             "model_version": h["model_version"], "kind": h["kind"],
                                             "body": dumps(h["values"])} for h in items])
            self._since_prune += len(items)

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` events, oldest first (read from the tail)."""
        query = sa.select(events.c.id, events.c.body).where(events.c.monitor == self.monitor).order_by(
            events.c.id.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit) if limit else query).all()
        out = []
        for rid, body in reversed(rows):
            try:
                out.append(self.decode("events", rid, body))
            except KeyError:
                continue
        return out

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` history entries, oldest first."""
        h = history.c
        query = sa.select(h.id, h.step, h.time, h.model_version, h.kind, h.body).where(
            h.monitor == self.monitor).order_by(h.id.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit) if limit else query).all()
        out = []
        for rid, step, when, version, kind, body in reversed(rows):
            try:
                values = self.decode("history", rid, body)
            except KeyError:
                continue
            out.append({"step": int(step), "time": float(when), "model_version": str(version), "kind": kind,
                        "values": values if isinstance(values, dict) else {}})
        return out

    # -- retrains --------------------------------------------------------------------------------
    def add_retrain(self, conn: Connection, reason: str, runner: str | None, started: float) -> int:
        result = conn.execute(retrains.insert().values(monitor=self.monitor, status="running", handled=False,
                                                       reason=reason, runner=runner, started=started))
        return int(result.inserted_primary_key[0])

    def update_retrain(self, conn: Connection, retrain_id: int, **values: Any) -> None:
        if "body" in values:
            values["body"] = dumps(values["body"])
        conn.execute(retrains.update().where(retrains.c.id == retrain_id).values(**values))

    def retrains(self, limit: int | None = None, where: Any = None) -> list[dict[str, Any]]:
        """Retrain records, oldest first: ``{"id", "status", "handled", "reason", "runner", "started",
        "running_since", "finished", **result}``."""
        r = retrains.c
        query = sa.select(r.id, r.status, r.handled, r.reason, r.runner, r.started, r.running_since, r.finished,
                          r.body).where(r.monitor == self.monitor).order_by(r.id.desc())
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit) if limit else query).all()
        out = []
        for rid, status, handled, reason, runner, started, since, finished, body in reversed(rows):
            try:
                result = self.decode("retrains", rid, body) or {}
            except KeyError:
                result = {"error": "corrupt record"}
            out.append({**(result if isinstance(result, dict) else {}), "id": int(rid), "status": status,
                        "handled": bool(handled), "reason": reason, "runner": runner, "started": started,
                        "running_since": since, "finished": finished, "time": finished or started})
        return out

    # -- retention -------------------------------------------------------------------------------
    def wrote(self, n: int) -> None:
        self._since_prune += n

    def due_prune(self) -> bool:
        """Apply the retention settings every so many written records, not on every call."""
        keep = min(self.keep.events, self.keep.history, self.keep.unlabelled_rows, 10_000)
        return self._since_prune >= max(100, keep // 10)

    def prune(self, conn: Connection) -> dict[str, int]:
        """Delete what is beyond the newest ``keep.*`` records; labelled rows are training data and stay."""
        self._since_prune = 0
        removed = {}
        for name, table, key, keep, extra in (
            ("events", events, events.c.id, self.keep.events, None),
            ("history", history, history.c.id, self.keep.history, None),
            ("retrains", retrains, retrains.c.id, self.keep.retrains, retrains.c.status != "running"),
            ("unlabelled_rows", traffic, traffic.c.seq, self.keep.unlabelled_rows, traffic.c.labelled.is_(False)),
        ):
            mine = table.c.monitor == self.monitor
            cond = mine if extra is None else sa.and_(mine, extra)
            cut = sa.select(key).where(cond).order_by(key.desc()).offset(keep - 1).limit(1).scalar_subquery()
            removed[name] = conn.execute(table.delete().where(cond, key < cut)).rowcount or 0
        return removed

    def drop(self) -> None:
        """Forget everything of this monitor (tests, and a user's clean start)."""
        with self.transaction() as conn:
            for table in (traffic, events, state, retrains, history):
                conn.execute(table.delete().where(table.c.monitor == self.monitor))
