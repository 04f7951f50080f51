"""The deadline worker: fires due timers through the engine's one step path.

Due work is found with the indexed ``next_due_at`` column; nothing that is not due is
loaded. Each due instance is processed in its own transaction. On PostgreSQL the
instance row is claimed with ``FOR UPDATE SKIP LOCKED`` in that transaction, so
several workers never process the same instance; on SQLite one worker per database
file is enforced with a lock file, because SQLite has no row locks to skip.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, func, select

from engine import clock, instances
from engine.audit import SYSTEM
from engine.db import is_sqlite, unit_of_work
from engine.errors import EngineError
from engine.models import ProcessInstance
from engine.settings import VAR_DIR

log = logging.getLogger(__name__)


def run_once(engine: Engine) -> int:
    """Process every instance due now, each once; returns how many were processed."""
    done: set[int] = set()
    while True:
        with unit_of_work(engine) as uow:
            ids = instances.due_instance_ids(uow.connection, clock.now(), limit=1, exclude=done)
            if not ids:
                return len(done)
            done.add(ids[0])
            try:
                instances.fire_due_timers(uow, ids[0], SYSTEM)
            except EngineError as exc:  # logged; the instance keeps its state
                log.warning("instance %s: %s", ids[0], exc)


def next_due(engine: Engine):
    with unit_of_work(engine, write=False) as uow:
        return uow.session.scalar(
            select(func.min(ProcessInstance.next_due_at)).where(
                ProcessInstance.status == instances.RUNNING
            )
        )


class SingleWorkerLock:
    """An exclusive lock file: one worker per SQLite database."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"another worker holds {self.path}: on SQLite only one worker may run, "
                "because SQLite cannot lock single instances (use PostgreSQL for several)"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_forever(engine: Engine, poll_seconds: float = 0.5,
                should_stop: Callable[[], bool] = lambda: False) -> None:
    lock = SingleWorkerLock(VAR_DIR / "worker.lock") if is_sqlite(engine) else None
    if lock:
        lock.acquire()
    try:
        while not should_stop():
            run_once(engine)
            due = next_due(engine)
            wait = poll_seconds
            if due is not None:
                wait = max(0.0, min(poll_seconds, (due - clock.now()).total_seconds()))
            time.sleep(wait)
    finally:
        if lock:
            lock.release()
