"""The deadline worker: fires due timers and sends queued mail (``complaints worker``).

Waking. The worker sleeps until the earliest due time: the minimum of the indexed
``process_instances.next_due_at`` over running instances, and the outbox's next attempt
(``engine.outbox.next_attempt_due``). A step that writes an earlier due time wakes it at
once (engine/wakeup.py: PostgreSQL ``NOTIFY`` sent at commit; on SQLite a datagram to a
socket beside the database file). As a safety net it also looks every ``poll_seconds``
(30 s), which costs one indexed query. It never scans or deserializes an instance that
is not due: the due ones are found by ``next_due_at <= now`` on the index, and only
those are loaded.

Firing. Each due instance is processed in its own transaction through the engine's one
step path, ``engine.instances.fire_due_timers``: lock the row, ``refresh_timers`` and
the engine steps, the versioned save, the projections (tasks, next due time, register)
and the audit events, then commit. A worker killed at any point of that (even SIGKILL)
loses nothing: the transaction rolls back, the row keeps its due time, and the next run
(this worker restarted, or another one) picks the instance up.

Several workers. On PostgreSQL the due instance is claimed with ``SELECT ... FOR
UPDATE SKIP LOCKED`` inside the step's transaction, so workers on several machines
share the due instances and never process one twice. On SQLite a single worker per
database file is enforced with a lock file (``<database>.worker.lock``): SQLite lets
only one transaction write at a time, so a second worker would add no throughput, only
wait on the first; and the wake-up socket has one listener.

Stopping. SIGTERM or SIGINT lets the step in progress commit, then the worker exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import DBAPIError

from engine import clock, instances, notifications, outbox, reviews, wakeup
from engine.audit import SYSTEM
from engine.db import is_sqlite, unit_of_work
from engine.errors import EngineError
from engine.models import ProcessInstance
from engine.settings import VAR_DIR

log = logging.getLogger(__name__)

#: The longest sleep without a wake-up (a missed notification costs at most this).
POLL_SECONDS = 30.0
#: How often a sleeping worker asks ``should_stop`` (no database access).
STOP_CHECK_SECONDS = 0.5
#: Waited after a database error before trying again.
RETRY_SECONDS = 5.0
#: Waited when something is due but another worker is processing it.
BUSY_SECONDS = 0.25
#: SpiffWorkflow fires a timer when its due time is strictly before now.
_TICK = timedelta(microseconds=1)

#: ``status = 'running'`` written so that no database answers it from the index on
#: ``status``: that index would visit every running instance (SQLite, which has no
#: statistics, prefers an equality index). The index on ``next_due_at``, read in order,
#: reaches the earliest (or the due) rows first, whatever the number waiting.
_RUNNING = ProcessInstance.status.concat("") == instances.RUNNING
_EARLIEST_DUE = (
    select(ProcessInstance.next_due_at)
    .where(ProcessInstance.next_due_at.is_not(None), _RUNNING)
    .order_by(ProcessInstance.next_due_at)
    .limit(1)
)
_EARLIEST_DUE_EXCEPT = _EARLIEST_DUE.where(
    ProcessInstance.id.not_in(bindparam("skip", expanding=True)))


def run_once(engine: Engine, *, exclude: Collection[int] = (),
             should_stop: Callable[[], bool] = lambda: False,
             stuck: set[int] | None = None) -> int:
    """Fire the timers of every instance due now, each once; return how many were processed.

    Instances in ``exclude`` are left alone. The ids of instances that are still due after
    their step (a step that failed, or a timer SpiffWorkflow did not fire) are added to
    ``stuck`` when given, so that a caller does not pick them again at once.
    """
    now = clock.now()
    skip = set(exclude)
    processed = 0
    while not should_stop():
        instance_id, still_due = _fire_next(engine, now, skip)
        if instance_id is None:
            return processed
        processed += 1
        if still_due:  # not picked again in this round (and reported to the caller)
            skip.add(instance_id)
            if stuck is not None:
                stuck.add(instance_id)
    return processed


def _fire_next(engine: Engine, now: datetime, skip: Collection[int]) -> tuple[int | None, bool]:
    """Claim one due instance and run its step in one transaction: (its id, stuck?).

    An instance is stuck when it is still due after its step at the same due time (the
    step failed, or fired nothing); one whose step fired a timer and released another
    that is already due has made progress and is taken again.
    """
    instance_id = None
    try:
        with unit_of_work(engine) as uow:
            claimed = _claim(uow.connection, now, skip)
            if claimed is None:
                return None, False
            instance_id, due_before = claimed
            ref = instances.fire_due_timers(uow, instance_id, SYSTEM)
    except Exception as exc:  # rolled back: the instance keeps its state and due time
        if instance_id is None:  # the claim failed: the database is away (the caller waits)
            raise
        if isinstance(exc, EngineError):
            log.warning("instance %s: %s", instance_id, exc)
        else:  # a bug or a database error in this instance's step: the others go on
            log.exception("instance %s: its step failed", instance_id)
        return instance_id, True
    log.info("instance %s: timers fired (%s)", instance_id, ref.status)
    return instance_id, ref.status == instances.RUNNING and ref.next_due_at == due_before


def _claim_statement(postgresql: bool, skipping: bool):
    query = (
        select(ProcessInstance.id, ProcessInstance.next_due_at)
        .where(ProcessInstance.next_due_at <= bindparam("now"), _RUNNING)
        .order_by(ProcessInstance.next_due_at)
        .limit(1)
    )
    if skipping:
        query = query.where(ProcessInstance.id.not_in(bindparam("skip", expanding=True)))
    if postgresql:  # rows another worker is processing are skipped, not waited for
        query = query.with_for_update(of=ProcessInstance, skip_locked=True)
    return query


_CLAIMS = {(pg, skipping): _claim_statement(pg, skipping)
           for pg in (False, True) for skipping in (False, True)}


def _claim(conn, now: datetime, skip: Collection[int]) -> tuple[int, datetime] | None:
    """The most overdue instance not in ``skip``, locked on PostgreSQL (indexed)."""
    statement = _CLAIMS[conn.dialect.name == "postgresql", bool(skip)]
    params = {"now": now - _TICK}
    if skip:
        params["skip"] = sorted(skip)
    row = conn.execute(statement, params).first()
    return (row[0], row[1]) if row is not None else None


def _earliest_due(conn, skip: Collection[int]) -> datetime | None:
    if skip:
        return conn.scalar(_EARLIEST_DUE_EXCEPT, {"skip": sorted(skip)})
    return conn.scalar(_EARLIEST_DUE)


def next_due(engine: Engine, skip: Collection[int] = ()) -> datetime | None:
    """The earliest due time of a running instance (indexed), ignoring ``skip``."""
    with unit_of_work(engine, write=False) as uow:
        return _earliest_due(uow.connection, skip)


def next_wake(engine: Engine, skip: Collection[int] = ()) -> datetime | None:
    """When there is next something to do: a timer due or a queued message to try."""
    with unit_of_work(engine, write=False) as uow:
        timer = _earliest_due(uow.connection, skip)
        mail = outbox.next_attempt_due(uow.connection)
    candidates = [t for t in (timer, mail) if t is not None]
    return min(candidates) if candidates else None


def deliver_mail(engine: Engine) -> int:
    """Start the annual reviews falling due and queue the staff digests that are due,
    then send the queued messages that are due (a failure is logged, not raised: these
    must not stop the deadlines)."""
    try:
        for process_id in reviews.start_due_reviews(engine):
            log.info("started the annual review of %s", process_id)
    except Exception:  # noqa: BLE001
        log.exception("starting the reviews falling due failed")
    try:
        notifications.queue_due_digests(engine)
    except Exception:  # noqa: BLE001
        log.exception("queueing the due-task digests failed")
    try:
        return outbox.deliver_due(engine)
    except Exception:  # noqa: BLE001
        log.exception("delivering queued mail failed")
        return 0


def lock_path(engine: Engine) -> Path:
    """The SQLite worker's lock file: beside the database file."""
    database = wakeup.database_file(engine)
    return Path(f"{database}.worker.lock") if database else VAR_DIR / "worker.lock"


class SingleWorkerLock:
    """An exclusive lock file: one worker per SQLite database.

    ``flock`` locks are released by the kernel when the process ends, however it ends
    (SIGKILL included), so a killed worker never leaves a stale lock behind.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise RuntimeError(
                f"another worker{f' (pid {holder})' if holder else ''} holds {self.path}: "
                "on SQLite only one worker may run, because SQLite lets one transaction "
                "write at a time (a second worker would only wait for the first) and "
                "cannot lock single instances; use PostgreSQL to run several workers"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def single_worker(engine: Engine):
    """Hold the SQLite worker lock for the block (nothing to hold on PostgreSQL)."""
    lock = SingleWorkerLock(lock_path(engine)) if is_sqlite(engine) else None
    if lock:
        lock.acquire()
    try:
        yield
    finally:
        if lock:
            lock.release()


class Worker:
    """The long-running loop; ``stop()`` may be called from a thread or a signal handler."""

    def __init__(self, engine: Engine, poll_seconds: float = POLL_SECONDS):
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._stopping = False
        self._waiter: wakeup.Waiter | None = None
        #: Rounds done (look, fire, send, compute the next wake time) and the time the
        #: last one planned to look again (None: only its poll); for tests and logs.
        self.rounds = 0
        self.wake_at: datetime | None = None
        #: instance id -> monotonic time it was found still due after its step.
        self._stuck: dict[int, float] = {}
        self._fired_last_round = 0

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def wake(self) -> None:
        """Look again now (as a deadline or a notification would make it)."""
        if self._waiter is not None:
            self._waiter.wake()

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        stopping = lambda: self._stopping or should_stop()  # noqa: E731
        with single_worker(self.engine), wakeup.open_waiter(self.engine) as waiter:
            # Listening starts before the first look, so no deadline written meanwhile
            # is missed.
            self._waiter = waiter
            log.info("worker started (pid %s): %s", os.getpid(), waiter.describe())
            try:
                while not stopping():
                    try:
                        wake_at = self._round(stopping)
                    except DBAPIError as exc:  # the database is away: try again later
                        log.warning("database error, retrying in %.0f s: %s",
                                    RETRY_SECONDS, exc)
                        self._sleep(waiter, RETRY_SECONDS, stopping)
                        continue
                    if stopping():
                        break
                    timeout = self.poll_seconds
                    if wake_at is not None:
                        seconds = (wake_at - clock.now()).total_seconds() + _TICK.total_seconds()
                        timeout = min(timeout, max(0.0, seconds))
                        if timeout == 0 and not self._fired_last_round:
                            # Due, yet nothing could be claimed: another worker holds it
                            # (SKIP LOCKED). Do not spin while it finishes.
                            timeout = min(self.poll_seconds, BUSY_SECONDS)
                    if timeout > 0:
                        self._sleep(waiter, timeout, stopping)
            finally:
                self._waiter = None

    def _round(self, stopping: Callable[[], bool]) -> datetime | None:
        """Do what is due; return when to look again."""
        expiry = time.monotonic() - self.poll_seconds
        self._stuck = {i: t for i, t in self._stuck.items() if t > expiry}
        stuck: set[int] = set()
        self._fired_last_round = run_once(self.engine, exclude=self._stuck.keys(),
                                          should_stop=stopping, stuck=stuck)
        self._stuck.update(dict.fromkeys(stuck, time.monotonic()))
        if stuck:
            log.warning("instances %s are still due after their step; retried in %.0f s",
                        sorted(stuck), self.poll_seconds)
        deliver_mail(self.engine)
        self.wake_at = next_wake(self.engine, self._stuck.keys())
        self.rounds += 1
        return self.wake_at

    def _sleep(self, waiter: wakeup.Waiter, seconds: float,
               stopping: Callable[[], bool]) -> None:
        """Sleep up to ``seconds``; return early on a wake-up or when asked to stop."""
        end = time.monotonic() + seconds
        while not stopping():
            left = end - time.monotonic()
            if left <= 0 or waiter.wait(min(left, STOP_CHECK_SECONDS)):
                return


def run_forever(engine: Engine, poll_seconds: float = POLL_SECONDS,
                should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run the worker until ``should_stop()`` is true (checked at least twice a second)."""
    Worker(engine, poll_seconds).run(should_stop)


def command(engine: Engine, once: bool) -> int:
    """``complaints worker [--once]``: the exit status."""
    logging.getLogger("spiff").setLevel(logging.WARNING)  # not every task state change
    if once:
        try:
            with single_worker(engine):
                count = run_once(engine)
                sent = deliver_mail(engine)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"processed {count} due instance(s)")
        if sent:
            print(f"sent {sent} queued message(s)")
        return 0
    worker = Worker(engine)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0
