"""Database engines and the unit of work.

One unit of work is one transaction. On SQLite a writing unit of work starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the database lock (WAL mode
keeps readers unblocked) instead of failing half-way with "database is locked"; on
PostgreSQL writers lock the instance row they change (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import lz4.frame
from sqlalchemy import Connection, DateTime, Engine, Text, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator

from engine import settings
from engine.errors import Conflict

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every database (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored: give it a time zone")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(DateTime(timezone=dialect.name == "postgresql"))


class StateText(TypeDecorator):
    """An instance state (JSON text), stored compressed on SQLite.

    A state is tens of kilobytes of repetitive JSON, rewritten at every step. On SQLite
    it is stored as an LZ4 frame (about a fifth of the size, in about ten microseconds
    for 30 KB; zlib's level 1 takes four times as long for a third less), so a step
    writes a few pages to the WAL instead of ten. The column keeps its declared TEXT
    type: SQLite keeps a BLOB as it is in any column, and changing the declared type
    would mean rebuilding the table every other table refers to. A state stored as
    text, or zlib-compressed, reads as it was. PostgreSQL compresses large values
    itself (TOAST), so it stores the text.

    Values go in as ``str`` or ``bytes`` (UTF-8 JSON) and always come out as ``str``.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return lz4.frame.compress(value.encode() if isinstance(value, str) else value)
        return value if isinstance(value, str) else value.decode()

    def process_result_value(self, value, dialect):
        if isinstance(value, bytes):
            if value.startswith(_LZ4_FRAME_MAGIC):
                return lz4.frame.decompress(value).decode()
            return zlib.decompress(value).decode()
        return value


_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def get_engine(url: str | None = None) -> Engine:
    """The shared SQLAlchemy engine for ``url`` (default: the configured database)."""
    url = url or settings.load().database_url
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _create(url)
            _ENGINES[url] = engine
        return engine


def dispose_all() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Every unit of work ends in COMMIT or ROLLBACK, so the pool need not reset.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_reset_on_return=None)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Let SQLAlchemy, not pysqlite, emit BEGIN (see _sqlite_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Instance states are tens of KB: a 64 MiB page cache and memory-mapped reads
            # keep the hot pages of the B-trees in memory (measured: ~10% per step).
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA mmap_size=268435456")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            immediate = conn.get_execution_options().get("sqlite_immediate")
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class UnitOfWork:
    """One transaction on one connection, with callbacks run only after its commit.

    ``connection`` serves the engine's hot path (SQLAlchemy Core). ``session`` is an ORM
    session joined to the same transaction, created on first use.
    """

    def __init__(self, connection: Connection):
        self.connection = connection
        self._session: Session | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._after_rollback: list[Callable[[], None]] = []

    @property
    def session(self) -> Session:
        if self._session is None:
            # Joined to the connection's transaction: the unit of work commits it.
            self._session = Session(bind=self.connection, expire_on_commit=False)
        return self._session

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)

    def after_rollback(self, fn: Callable[[], None]) -> None:
        self._after_rollback.append(fn)

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name


@contextlib.contextmanager
def unit_of_work(engine: Engine | None = None, *, write: bool = True) -> Iterator[UnitOfWork]:
    """Open a transaction; commit on success, roll back on any exception."""
    engine = engine or get_engine()
    connection = engine.connect()
    if write and is_sqlite(engine):
        connection = connection.execution_options(sqlite_immediate=True)
    uow = UnitOfWork(connection)
    try:
        with connection.begin():
            try:
                yield uow
                if uow._session is not None:
                    uow._session.flush()
            except StaleDataError:
                raise Conflict(
                    "the record was changed by someone else meanwhile; reload and retry"
                ) from None
    except BaseException:
        for fn in uow._after_rollback:
            fn()
        raise
    finally:
        if uow._session is not None:
            uow._session.close()
        connection.close()
    for fn in uow._after_commit:
        fn()
