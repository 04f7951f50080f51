"""Benchmark: the deadline worker's lateness, and many waiting instances with a burst due.

First, on the real clock, a one-second timer is started and timed TIMERS times, one
after the other, with the worker running: how long after its due time it fired
(median; target: within 1 s).

Then for each configuration, in a fresh database:
  1. start WAITING instances of a small timer process (bench/timer_process: wait until
     ``due_at``, then open a Quality Manager task) through the engine, DUE of them due
     at the same moment M, the others a day later;
  2. move the engine clock to M and wake the worker (``engine.worker.Worker`` running
     in a thread, as ``complaints worker`` runs it; its workflow cache is cleared, as
     in a worker process that did not start the instances);
  3. report the seconds until the worker's round has fired all DUE timers, and the SQL
     statements the worker ran per fired timer (counted with SQLAlchemy's
     ``before_cursor_execute`` event on the worker's thread; BEGIN/COMMIT not counted).

The default runs 10,000 waiting / 1,000 due and then 1,000 waiting / 1,000 due: the
statements per fired timer and the time should not depend on the number not due
(target: all 1,000 fired in under 60 s).

    .venv/bin/python bench/timers.py [--timers 7] [--waiting 10000 1000] [--due 1000]
                                      [--database-url postgresql+psycopg://...]

SQLite (a temporary file) by default; with ``--database-url`` each configuration runs in
a new schema of that PostgreSQL database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, func, select, text  # noqa: E402

from engine import clock, instances, migrate, runtime  # noqa: E402
from engine.audit import Actor  # noqa: E402
from engine.db import dispose_all, get_engine, unit_of_work  # noqa: E402
from engine.deploy import deploy_directory  # noqa: E402
from engine.models import AuditEvent, HumanTask, ProcessInstance  # noqa: E402
from engine.roles import ROLES  # noqa: E402
from engine.worker import Worker  # noqa: E402

PROCESS_DIR = ROOT / "bench" / "timer_process"
PROCESS_ID = "worker_timer"
ACTOR = Actor("bench", frozenset(ROLES))
BATCH = 250  # instances started per transaction
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
MOMENT = T0 + timedelta(hours=1)


def lateness(url: str, timers: int) -> list[float]:
    """Real clock: one-second timers, one after the other; seconds each fired late."""
    migrate.upgrade(create_engine(url))
    engine = get_engine(url)
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, PROCESS_DIR, ACTOR)
        assert result.ok, result.problems
    worker = Worker(engine)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    late = []
    try:
        while worker.rounds < 1:
            time.sleep(0.01)
        for _ in range(timers):
            due = clock.now() + timedelta(seconds=1)
            with unit_of_work(engine) as uow:
                instance_id = instances.start_instance(
                    uow, PROCESS_ID, {"due_at": due.isoformat()}, ACTOR).id
            fired_at = None
            while fired_at is None:
                time.sleep(0.02)
                with unit_of_work(engine, write=False) as uow:
                    fired_at = uow.session.scalar(select(AuditEvent.at).where(
                        AuditEvent.instance_id == instance_id,
                        AuditEvent.action == "timers_checked"))
            late.append((fired_at - due).total_seconds())
    finally:
        worker.stop()
        thread.join(30)
        dispose_all()
        runtime.clear_caches()
    return late


def create_instances(engine, waiting: int, due: int) -> float:
    """Start ``waiting`` instances, ``due`` of them due at MOMENT; return the seconds."""
    later = (MOMENT + timedelta(days=1)).isoformat()
    due_times = [MOMENT.isoformat()] * due + [later] * (waiting - due)
    started = time.perf_counter()
    for first in range(0, waiting, BATCH):
        with unit_of_work(engine) as uow:
            for due_at in due_times[first:first + BATCH]:
                instances.start_instance(uow, PROCESS_ID, {"due_at": due_at}, ACTOR)
    return time.perf_counter() - started


def fire(engine, due: int) -> tuple[float, int]:
    """Wake the worker at MOMENT; (seconds until all have fired, worker statements)."""
    worker = Worker(engine)
    thread = threading.Thread(target=worker.run, daemon=True)
    statements = [0]

    def count(conn, cursor, statement, *args):
        if threading.current_thread() is thread:
            statements[0] += 1

    thread.start()
    while worker.rounds < 1:  # started, looked, found nothing due: asleep
        time.sleep(0.01)
    event.listen(engine, "before_cursor_execute", count)
    runtime.clear_caches()
    rounds = worker.rounds
    clock.current().set(MOMENT + timedelta(seconds=1))
    started = time.perf_counter()
    worker.wake()
    while worker.rounds == rounds:
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", count)
    worker.stop()
    thread.join(30)
    with unit_of_work(engine, write=False) as uow:
        fired = uow.session.scalar(select(func.count()).select_from(HumanTask))
        left = uow.session.scalar(select(func.count()).select_from(ProcessInstance).where(
            ProcessInstance.next_due_at <= MOMENT))
    assert (fired, left) == (due, 0), f"fired {fired} of {due}, {left} still due"
    return elapsed, statements[0]


def run(url: str, waiting: int, due: int) -> dict[str, float]:
    migrate.upgrade(create_engine(url))
    engine = get_engine(url)
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, PROCESS_DIR, ACTOR)
        assert result.ok, result.problems
    clock.set_default(clock.ManualClock(T0))
    try:
        created = create_instances(engine, waiting, due)
        elapsed, statements = fire(engine, due)
    finally:
        clock.set_default(clock.SYSTEM_CLOCK)
        dispose_all()
        runtime.clear_caches()
    return {"waiting": waiting, "due": due, "created": created, "elapsed": elapsed,
            "statements": statements}


def with_schema(base_url: str, work):
    """Run ``work(url)`` in a new schema of the PostgreSQL database, dropped afterwards."""
    schema = f"bench_timers_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        return work(f"{base_url}{separator}options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, nargs="+", default=[10_000, 1_000],
                        help="waiting instances per configuration (default: 10000 1000)")
    parser.add_argument("--due", type=int, default=1_000,
                        help="how many of them fall due at the same moment (default: 1000)")
    parser.add_argument("--timers", type=int, default=7,
                        help="one-second timers timed for lateness (default: 7)")
    parser.add_argument("--database-url",
                        help="a PostgreSQL URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    database = "PostgreSQL" if args.database_url else "SQLite file"
    print(f"process: {PROCESS_ID} (bench/timer_process), {database}; one worker")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            late = with_schema(args.database_url, lambda url: lateness(url, args.timers))
        else:
            late = lateness(f"sqlite:///{Path(tmp) / 'lateness.db'}", args.timers)
        median = statistics.median(late)
        print(f"one-second timer, {args.timers} times: fired {median * 1000:.0f} ms after its "
              f"due time (median; max {max(late) * 1000:.0f} ms); target: within 1 s: "
              f"{'met' if median < 1 else 'NOT met'}", flush=True)
        for n, waiting in enumerate(args.waiting):
            due = min(args.due, waiting)
            if args.database_url:
                result = with_schema(args.database_url,
                                     lambda url, w=waiting, d=due: run(url, w, d))
            else:
                result = run(f"sqlite:///{Path(tmp) / f'timers{n}.db'}", waiting, due)
            results.append(result)
            print(f"{waiting:>6} waiting, {due:>5} due at one moment: all fired in "
                  f"{result['elapsed']:6.2f} s ({due / result['elapsed']:6.1f} timers/s), "
                  f"{result['statements'] / due:5.2f} SQL statements per fired timer "
                  f"(instances started in {result['created']:.0f} s, not timed)", flush=True)
    slowest = max(r["elapsed"] for r in results)
    print(f"target: all due timers fired in under 60 s: {'met' if slowest < 60 else 'NOT met'} "
          f"(slowest {slowest:.2f} s)")
    per_fired = {round(r["statements"] / r["due"], 2) for r in results}
    same = "the same" if len(per_fired) == 1 else "NOT the same"
    print(f"statements per fired timer with {' / '.join(str(r['waiting']) for r in results)} "
          f"waiting: {same} ({', '.join(str(p) for p in sorted(per_fired))})")


if __name__ == "__main__":
    main()
