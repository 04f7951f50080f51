"""Waking the deadline worker when an earlier deadline is written.

The worker sleeps until the earliest ``process_instances.next_due_at`` (an indexed
column; engine.worker). A step that writes a *new earlier* due time for its instance
(a new timer, or one moved forward) announces it here, so that a sleeping worker wakes
at once instead of at its safety poll:

* PostgreSQL: ``_persist`` runs ``SELECT pg_notify('complaints_due_<schema hash>',
  <instant>)`` in the step's own transaction (channels are shared by all the schemas
  of a database, so the channel is named for the schema in use). PostgreSQL delivers
  a notification only when that transaction commits (a rolled-back step wakes nobody),
  to every worker LISTENing on any machine. The worker listens on one dedicated
  autocommit connection and waits on its socket with ``select()``.
* SQLite: the database is a file on one machine and one worker serves it. That worker
  binds a Unix datagram socket beside the database file (``<file>.wake``, or a hashed
  name in the temporary directory when that path is too long for a socket); after the
  step's commit the writer (a web process, the CLI, the worker) sends one datagram to
  it, without blocking. When no worker runs, the send fails and is ignored. Nothing
  polls the database.

A notification only shortens the worker's sleep: the worker always reads the earliest
due time from the column itself. A lost notification (the worker was restarting)
therefore costs at most the worker's safety poll period, and a spurious one costs one
indexed query.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import socket
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, event, func
from sqlalchemy import select as sql_select
from sqlalchemy.dialects import postgresql

from engine.db import UnitOfWork

log = logging.getLogger(__name__)

CHANNEL = "complaints_due"
#: Unix socket paths are limited to 108 bytes (less on some systems).
_MAX_SOCKET_PATH = 100
#: PostgreSQL channels are per database, not per schema: the channel is named for the
#: schema the application uses (its ``search_path``), so that deployments (or test runs)
#: in other schemas of the same database do not wake each other.
_CHANNEL_SQL = func.concat(f"{CHANNEL}_", func.left(func.md5(func.current_schema()), 16))
_NOTIFY = sql_select(func.pg_notify(_CHANNEL_SQL, bindparam("payload")))
_CHANNEL_NAME = sql_select(_CHANNEL_SQL)


def announce(target: UnitOfWork | Connection, due_at: datetime) -> None:
    """Tell the worker(s) that ``due_at`` is now a due time, once this transaction commits.

    ``target`` is the unit of work, or the connection of code that has only that (an
    after-step hook, the outbox): on SQLite the datagram then goes when the connection
    is returned to the pool after its commit, and not at all after a rollback.
    """
    payload = due_at.isoformat()
    conn = target.connection if isinstance(target, UnitOfWork) else target
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"payload": payload})
        return
    path = socket_path(conn.engine)
    if path is None:
        return
    if isinstance(target, UnitOfWork):
        target.after_commit(lambda: _send(path, payload.encode()))
        return
    _watch(conn.engine)
    conn.info.setdefault(_PENDING, {})[path] = payload.encode()


_PENDING = "complaints_wakeup_pending"
_watched: set[int] = set()


def _watch(engine: Engine) -> None:
    """Send a connection's pending wake-ups when it is checked in, drop them on rollback."""
    if id(engine) in _watched:
        return
    _watched.add(id(engine))

    @event.listens_for(engine, "rollback")
    def _drop(conn) -> None:
        conn.info.pop(_PENDING, None)

    @event.listens_for(engine.pool, "checkin")
    def _send_pending(dbapi_connection, record) -> None:
        pending = record.info.pop(_PENDING, None) if record is not None else None
        for path, payload in (pending or {}).items():
            _send(path, payload)


def _send(path: str, payload: bytes) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(payload, path)
    except OSError:  # no worker listens (or its queue is full: it is awake anyway)
        pass
    finally:
        sock.close()


def database_file(engine: Engine) -> Path | None:
    """The SQLite database file of ``engine`` (None for PostgreSQL or an in-memory one)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(os.path.abspath(database))


def socket_path(engine: Engine) -> str | None:
    """Where the SQLite worker of ``engine``'s database listens for wake-ups."""
    database = database_file(engine)
    if database is None:
        return None
    path = f"{database}.wake"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(database)).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"complaints-{digest}.wake")


class Waiter:
    """What the worker sleeps on: a deadline, a wake-up from a writer, or ``wake()``.

    ``wake()`` may be called from another thread or a signal handler (it writes one byte
    to a pipe), so that stopping the worker does not wait for its sleep to end.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # the pipe is full: a wake-up is pending anyway
            os.write(self._write_fd, b"!")

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True when woken before it ran out."""
        # poll(), not select(): select() cannot watch a descriptor numbered 1024 or more,
        # which a process with many open files (a test run, a busy host) gives out.
        poller = select.poll()
        for fd in (self._read_fd, *self._sources()):
            poller.register(fd, select.POLLIN)
        readable = [fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)]
        if not readable:
            return False
        if self._read_fd in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 512):
                    pass
        self._drain(readable)
        return True

    def describe(self) -> str:
        return "no wake-ups (in-memory database): looks at its poll period"

    def _sources(self) -> list[int]:
        return []

    def _drain(self, readable: list[int]) -> None:
        pass

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SocketWaiter(Waiter):
    """SQLite: a Unix datagram socket beside the database file (one worker binds it)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        with contextlib.suppress(FileNotFoundError):  # left by a worker that was killed
            os.unlink(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(path)
        self._socket.setblocking(False)

    def describe(self) -> str:
        return f"woken by new deadlines through {self.path}"

    def _sources(self) -> list[int]:
        return [self._socket.fileno()]

    def _drain(self, readable: list[int]) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._socket.recv(256):
                pass

    def close(self) -> None:
        super().close()
        self._socket.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _ListenWaiter(Waiter):
    """PostgreSQL: LISTEN on a dedicated autocommit connection; reconnects when it drops."""

    def __init__(self, engine: Engine):
        super().__init__()
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._conn = None
        self.channel = ""
        self._connect()

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(self._url, autocommit=True)
            statement = _CHANNEL_NAME.compile(dialect=postgresql.dialect(),
                                              compile_kwargs={"literal_binds": True})
            self.channel = self._conn.execute(str(statement)).fetchone()[0]
            self._conn.execute(f'LISTEN "{self.channel}"')
        except psycopg.Error as exc:
            log.warning("cannot LISTEN for new deadlines (will poll): %s", exc)
            self._close_connection()

    def describe(self) -> str:
        if self._conn is None:
            return "not yet listening for new deadlines on PostgreSQL (polling)"
        return f"woken by new deadlines: listening on PostgreSQL channel {self.channel}"

    def _sources(self) -> list[int]:
        if self._conn is None:
            self._connect()
        return [self._conn.fileno()] if self._conn is not None else []

    def _drain(self, readable: list[int]) -> None:
        import psycopg

        if self._conn is None or self._conn.fileno() not in readable:
            return
        try:
            for _ in range(1000):
                if not list(self._conn.notifies(timeout=0)):
                    break
        except psycopg.Error as exc:  # the server went away: reconnect at the next wait
            log.warning("lost the LISTEN connection: %s", exc)
            self._close_connection()

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        super().close()
        self._close_connection()


def open_waiter(engine: Engine) -> Waiter:
    """Start listening for new earlier deadlines of ``engine``'s database.

    Open it *before* reading the earliest due time, so that nothing written in between
    is missed.
    """
    if engine.dialect.name == "postgresql":
        return _ListenWaiter(engine)
    path = socket_path(engine)
    return _SocketWaiter(path) if path is not None else Waiter()
