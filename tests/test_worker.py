"""The deadline worker (engine/worker.py, engine/wakeup.py) on real databases and processes.

Unit tests move the engine clock (``manual_clock``) instead of sleeping; a test that
waits, waits for an event (a log line, a row) with a deadline. The lateness test uses
the real clock, because what it measures is wall-clock lateness.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from engine import clock, instances, runtime, wakeup, worker
from engine.audit import Actor
from engine.calendar import BusinessCalendar, iso
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.models import AuditEvent, HumanTask, ProcessInstance
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT
from engine.users import create_token, create_user
from web import create_app

from .test_web_api import PASSWORD, bearer

FIXTURES = Path(__file__).parent / "fixtures"
BIN = PROJECT_ROOT / ".venv" / "bin"
EVERYONE = Actor("root", frozenset(ROLES))
STAFF = Actor("sam", frozenset({"staff"}))


# -- helpers -------------------------------------------------------------------------------

def deploy_timer_process(engine) -> None:
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, FIXTURES / "worker", EVERYONE)
    assert result.ok, [str(p) for p in result.problems]


def start_overdue(engine, count: int = 1) -> list[int]:
    """Instances whose timer is 30 s overdue on the real clock (started a minute ago)."""
    now = clock.SYSTEM_CLOCK.now()
    with clock.using(clock.ManualClock(now - timedelta(minutes=1))):
        return start_waiting(engine, now - timedelta(seconds=30), count)


def start_waiting(engine, due_at: datetime, count: int = 1) -> list[int]:
    """Start ``count`` instances waiting until ``due_at``, in one transaction."""
    with unit_of_work(engine) as uow:
        return [instances.start_instance(uow, "worker_timer", {"due_at": due_at.isoformat()},
                                         STAFF).id
                for _ in range(count)]


def row(engine, instance_id: int) -> ProcessInstance:
    with unit_of_work(engine, write=False) as uow:
        return uow.session.get(ProcessInstance, instance_id)


def count_where(engine, model, *conditions) -> int:
    with unit_of_work(engine, write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(model).where(*conditions))


def fired_counts(engine, ids: list[int]) -> dict[int, tuple[int, int]]:
    """instance -> (timers_checked audit events, follow_up task rows)."""
    with unit_of_work(engine, write=False) as uow:
        audits = dict(uow.session.execute(
            select(AuditEvent.instance_id, func.count())
            .where(AuditEvent.action == "timers_checked", AuditEvent.instance_id.in_(ids))
            .group_by(AuditEvent.instance_id)).all())
        tasks = dict(uow.session.execute(
            select(HumanTask.instance_id, func.count())
            .where(HumanTask.bpmn_id == "follow_up", HumanTask.instance_id.in_(ids))
            .group_by(HumanTask.instance_id)).all())
    return {i: (audits.get(i, 0), tasks.get(i, 0)) for i in ids}


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Wait for an event (not for a timer); return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


class Process:
    """A subprocess whose output lines are collected by a thread, to wait for a line."""

    def __init__(self, argv: list[str], db_url: str):
        env = dict(os.environ, COMPLAINTS_DATABASE_URL=db_url, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, seconds: float = 30) -> re.Match:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.popen.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}")

    def stop(self, signum: int = signal.SIGTERM, seconds: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        code = self.popen.wait(timeout=seconds)
        self._reader.join(5)
        return code


def worker_process(db_url: str, *args: str) -> Process:
    return Process([str(BIN / "complaints"), "worker", *args], db_url)


def worker_once(db_url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COMPLAINTS_DATABASE_URL=db_url)
    return subprocess.run([str(BIN / "complaints"), "worker", "--once"], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


class WorkerThread:
    """``Worker.run`` in a thread of this process (same engine clock as the test)."""

    def __init__(self, engine, poll_seconds: float = worker.POLL_SECONDS):
        self.worker = worker.Worker(engine, poll_seconds)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.worker.rounds >= 1, 30, "the worker's first round")

    def stop(self) -> float:
        started = time.monotonic()
        self.worker.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker did not stop"
        return time.monotonic() - started


# -- waking --------------------------------------------------------------------------------

def test_worker_wakes_for_a_newly_written_earlier_deadline_without_waiting_for_its_poll(
        db, manual_clock):
    deploy_timer_process(db)
    later_due = manual_clock.now() + timedelta(hours=1)
    [later] = start_waiting(db, later_due)
    running = WorkerThread(db, poll_seconds=60)  # asleep until `later` is due, or 60 s
    try:
        assert running.worker.wake_at == later_due
        rounds = running.worker.rounds
        time.sleep(0.3)  # a sleeping worker does not look at the database by itself
        assert running.worker.rounds == rounds
        earlier_due = manual_clock.now() + timedelta(seconds=2)
        [earlier] = start_waiting(db, earlier_due)
        took = wait_until(lambda: running.worker.wake_at == earlier_due, 10,
                          "the worker woke and planned the earlier deadline")
        assert took < 5  # woken by the new deadline, not by its 60 s poll
        # It now sleeps until that deadline (2 s), not until its poll, and fires it.
        manual_clock.advance(seconds=3)
        wait_until(lambda: row(db, earlier).next_due_at is None, 10,
                   "the earlier deadline fired")
        assert fired_counts(db, [earlier, later]) == {earlier: (1, 1), later: (0, 0)}
        assert row(db, later).next_due_at == later_due
    finally:
        assert running.stop() < 5  # stopping does not wait for the sleep to end


@pytest.mark.parametrize("via", ["unit of work", "connection"])
def test_wake_up_is_sent_when_the_transaction_commits_and_never_after_a_rollback(db, via):
    def announce(uow):
        wakeup.announce(uow if via == "unit of work" else uow.connection, clock.now())

    with wakeup.open_waiter(db) as waiter:
        assert not waiter.wait(0)
        with pytest.raises(RuntimeError), unit_of_work(db) as uow:
            announce(uow)
            raise RuntimeError("the step failed")
        assert not waiter.wait(0.3)
        with unit_of_work(db) as uow:
            announce(uow)
            assert not waiter.wait(0.1)  # not before the commit
        assert waiter.wait(5)
        assert not waiter.wait(0)  # one wake-up, drained


def test_worker_sleeps_until_the_earliest_due_time_then_fires_it(db, manual_clock):
    deploy_timer_process(db)
    [due] = start_waiting(db, manual_clock.now() + timedelta(minutes=5))
    running = WorkerThread(db, poll_seconds=0.2)
    try:
        wait_until(lambda: running.worker.rounds >= 3, 10, "three polls")
        # it looked again and again, but nothing is due yet
        assert fired_counts(db, [due]) == {due: (0, 0)}
        manual_clock.advance(minutes=5, seconds=1)
        wait_until(lambda: row(db, due).next_due_at is None, 10, "the timer fired")
        assert fired_counts(db, [due]) == {due: (1, 1)}
    finally:
        running.stop()


def test_worker_never_loads_an_instance_that_is_not_due(db, manual_clock, monkeypatch):
    deploy_timer_process(db)
    loaded: list[str] = []
    real_load = runtime.load_workflow

    def counting_load(state, specs, calendar):
        loaded.append(state)
        return real_load(state, specs, calendar)

    monkeypatch.setattr(runtime, "load_workflow", counting_load)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db, "before_cursor_execute", count)
    try:
        costs = []
        for waiting in (0, 40):
            start_waiting(db, manual_clock.now() + timedelta(days=30), count=waiting)
            [due] = start_waiting(db, manual_clock.now() + timedelta(minutes=1))
            manual_clock.advance(minutes=2)
            runtime.clear_caches()  # as a worker process that did not start them
            loaded.clear()
            statements.clear()
            assert worker.run_once(db) == 1
            assert fired_counts(db, [due]) == {due: (1, 1)}
            assert len(loaded) == 1  # the due instance only
            costs.append(len(statements))
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert costs[0] == costs[1]  # 40 more waiting instances cost nothing


def test_due_queries_read_the_next_due_index_not_every_running_instance(sqlite_url):
    """SQLite, without statistics, would answer ``status = 'running'`` from the status
    index and so visit every waiting instance; the worker's queries must not."""
    engine = get_engine(sqlite_url)
    statements = [*worker._CLAIMS.values(), worker._EARLIEST_DUE, worker._EARLIEST_DUE_EXCEPT]
    with engine.connect() as conn:
        for statement in statements:
            if statement._for_update_arg is not None:  # PostgreSQL's
                continue
            compiled = statement.params(now=clock.now(), skip=[1, 2]).compile(
                engine, compile_kwargs={"render_postcompile": True})
            sql = str(compiled)
            # The plan depends on the statement, not on the values bound.
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                        (1,) * sql.count("?")).all()
            details = " ".join(str(step[-1]) for step in plan)
            assert "USING INDEX ix_process_instances_next_due_at" in details, (sql, details)
            assert "ix_process_instances_status" not in details


def test_instance_still_due_after_its_step_is_not_retried_in_a_loop(db, manual_clock,
                                                                    monkeypatch):
    deploy_timer_process(db)
    [due] = start_waiting(db, manual_clock.now() + timedelta(minutes=1))
    manual_clock.advance(minutes=2)

    def fire_nothing(uow, instance_id, actor):
        raise instances.Conflict("the case was changed by someone else meanwhile")

    monkeypatch.setattr(instances, "fire_due_timers", fire_nothing)
    stuck: set[int] = set()
    assert worker.run_once(db, stuck=stuck) == 1  # tried once in the round, not again
    assert stuck == {due}
    assert worker.next_due(db, skip=stuck) is None


# -- several workers -----------------------------------------------------------------------

@pytest.mark.postgres
def test_postgresql_worker_skips_an_instance_another_worker_is_processing(pg_url, monkeypatch):
    engine = get_engine(pg_url)
    deploy_timer_process(engine)
    ids = start_overdue(engine, count=3)
    in_step, release = threading.Event(), threading.Event()
    first_worker: list[threading.Thread] = []

    def pause_first_worker(conn, ref, workflow, actor, audit):
        if threading.current_thread() in first_worker:
            in_step.set()
            assert release.wait(30)

    monkeypatch.setattr(instances, "_after_step_hooks",
                        [*instances._after_step_hooks, pause_first_worker])
    counts: dict[str, int] = {}

    def first():
        counts["first"] = worker.run_once(engine)

    thread = threading.Thread(target=first)
    first_worker.append(thread)
    thread.start()
    try:
        assert in_step.wait(30)
        # The first worker holds its instance locked mid-step: the second skips it
        # (it does not wait for it) and fires the two others.
        counts["second"] = worker.run_once(engine)
        assert counts["second"] == 2
    finally:
        release.set()
        thread.join(30)
    assert counts == {"first": 1, "second": 2}
    assert fired_counts(engine, ids) == {i: (1, 1) for i in ids}


@pytest.mark.postgres
def test_two_worker_processes_on_postgresql_never_fire_the_same_instance_twice(pg_url):
    engine = get_engine(pg_url)
    deploy_timer_process(engine)
    processes = [worker_process(pg_url) for _ in range(2)]
    try:
        for process in processes:
            process.wait_for("worker started .*listening on PostgreSQL channel complaints_due_")
        # One commit makes 150 instances due at once: both workers are woken together.
        ids = start_overdue(engine, count=150)
        wait_until(lambda: count_where(engine, ProcessInstance,
                                       ProcessInstance.next_due_at.is_not(None)) == 0,
                   120, "every due instance fired")
    finally:
        codes = [process.stop() for process in processes]
    assert codes == [0, 0]  # SIGTERM stops a worker cleanly
    assert fired_counts(engine, ids) == {i: (1, 1) for i in ids}
    fired = [{int(m) for m in re.findall(r"instance (\d+): timers fired", p.output)}
             for p in processes]
    assert fired[0] and fired[1]  # woken together, they shared the work (74/76 here)
    assert fired[0].isdisjoint(fired[1])
    assert fired[0] | fired[1] == set(ids)


def test_sqlite_refuses_a_second_worker_and_says_why(sqlite_url):
    first = worker_process(sqlite_url)
    try:
        first.wait_for("worker started")
        for args in ((), ("--once",)):
            second = subprocess.run(
                [str(BIN / "complaints"), "worker", *args], capture_output=True, text=True,
                env=dict(os.environ, COMPLAINTS_DATABASE_URL=sqlite_url), timeout=60)
            assert second.returncode == 1
            assert "only one worker may run" in second.stderr
            assert "one transaction write at a time" in second.stderr
            assert f"pid {first.popen.pid}" in second.stderr
    finally:
        assert first.stop() == 0
    assert "processed 0 due instance(s)" in worker_once(sqlite_url).stdout  # lock released


def test_sigint_stops_the_worker_cleanly(sqlite_url):
    process = worker_process(sqlite_url)
    process.wait_for("worker started")
    assert process.stop(signal.SIGINT, seconds=10) == 0
    assert "Traceback" not in process.output


# -- killed mid-step -----------------------------------------------------------------------

PAUSING_WORKER = """
import sys, time
from engine import instances, worker
from engine.db import get_engine

def pause(conn, ref, workflow, actor, audit):
    # After the state, the task rows and the register are written, before the audit
    # events and the commit: the middle of a step.
    print(f"IN STEP {ref.id}", flush=True)
    time.sleep(300)

instances.on_after_step(pause)
sys.exit(worker.command(get_engine(), once=True))
"""


def test_worker_killed_mid_step_loses_nothing_and_the_next_run_fires_once(db_url, db):
    deploy_timer_process(db)
    [instance_id] = start_overdue(db)
    before = row(db, instance_id)
    doomed = Process([sys.executable, "-c", PAUSING_WORKER], db_url)
    try:
        doomed.wait_for(rf"IN STEP {instance_id}")
    finally:
        doomed.stop(signal.SIGKILL)
    assert doomed.popen.returncode == -signal.SIGKILL
    after_kill = row(db, instance_id)
    assert (after_kill.lock_version, after_kill.next_due_at, after_kill.state) == (
        before.lock_version, before.next_due_at, before.state)
    assert fired_counts(db, [instance_id]) == {instance_id: (0, 0)}

    first = worker_once(db_url)
    assert (first.returncode, first.stdout) == (0, "processed 1 due instance(s)\n"), first.stderr
    again = worker_once(db_url)
    assert (again.returncode, again.stdout) == (0, "processed 0 due instance(s)\n"), again.stderr
    assert fired_counts(db, [instance_id]) == {instance_id: (1, 1)}
    assert row(db, instance_id).lock_version == before.lock_version + 1


# -- lateness --------------------------------------------------------------------------------

def test_one_second_timer_fires_within_one_second_of_its_due_time(db):
    """Real clock: a timer due one second after it is written, five times (median)."""
    deploy_timer_process(db)
    running = WorkerThread(db)  # default 30 s poll: only the due time can wake it in time
    lateness: list[float] = []
    try:
        for _ in range(5):
            due = clock.now() + timedelta(seconds=1)
            [instance_id] = start_waiting(db, due)
            wait_until(lambda i=instance_id: row(db, i).next_due_at is None, 15,
                       "the one-second timer fired")
            with unit_of_work(db, write=False) as uow:
                fired_at = uow.session.scalar(select(AuditEvent.at).where(
                    AuditEvent.instance_id == instance_id,
                    AuditEvent.action == "timers_checked"))
            lateness.append((fired_at - due).total_seconds())
    finally:
        running.stop()
    assert all(late >= 0 for late in lateness), lateness  # never early
    assert statistics.median(lateness) < 1.0, lateness


# -- end to end ------------------------------------------------------------------------------

def working_days_before(instant: datetime, days: int) -> datetime:
    calendar = BusinessCalendar()
    local = calendar.local(instant)
    day = local.date()
    while days:
        day -= timedelta(days=1)
        if calendar.is_business_day(day):
            days -= 1
    return datetime.combine(day, local.timetz()).astimezone(UTC)


@pytest.fixture
def policy(db, monkeypatch):
    """The policy deployed, a member of staff and a Quality Manager with API tokens."""
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", EVERYONE)
        assert result.ok, [str(p) for p in result.problems]
        create_user(uow.session, "sam", PASSWORD, ["staff"])
        create_user(uow.session, "quinn", PASSWORD, ["staff", "quality_manager"])
        tokens = {name: create_token(uow.session, name) for name in ("sam", "quinn")}
    client = create_app({"SECRET_KEY": "test", "TESTING": True}).test_client()
    return client, tokens


def post_complaint(client, token: str, received_at: datetime) -> None:
    created = client.post("/api/v1/complaints", headers=bearer(token), json={
        "channel": "letter", "received_at": iso(received_at),
        "complainant": {"name": "Chris Evans", "email": "chris@example.com"},
        "summary": "Router never arrived", "description": "Promised within 3 days.",
        "personal_data_involved": False})
    assert created.status_code == 201, created.get_json()


def logging_chased(client, token: str) -> bool:
    tasks = client.get("/api/v1/tasks", headers=bearer(token)).get_json()
    return any(t["bpmn_id"] == "chase_overdue_logging" for t in tasks)


def test_complaint_received_four_working_days_ago_is_escalated_within_seconds(
        db_url, policy):
    """`make run`: the API and a worker process; nobody touches the case."""
    client, tokens = policy
    running = worker_process(db_url)
    try:
        running.wait_for("worker started")
        post_complaint(client, tokens["sam"], working_days_before(clock.now(), 4))
        took = wait_until(lambda: logging_chased(client, tokens["quinn"]), 15,
                          "the Quality Manager's chase task")
        assert took < 5
    finally:
        assert running.stop() == 0


def test_logging_deadline_falling_due_is_escalated_by_the_worker_process(db_url, db, policy):
    """A complaint whose logging deadline (1 working day) falls due seconds after it is
    posted: only the worker process can escalate it, and does so at once."""
    client, tokens = policy
    calendar = BusinessCalendar()
    if not calendar.is_business_day(calendar.local(clock.now() + timedelta(minutes=1)).date()):
        pytest.skip("a logging deadline falls due only on a working day; today is not one")
    running = worker_process(db_url)
    try:
        running.wait_for("worker started")
        deadline = clock.now().replace(microsecond=0) + timedelta(seconds=4)
        received_at = working_days_before(deadline, 1)
        assert calendar.add_business_days(received_at, 1) == deadline
        post_complaint(client, tokens["sam"], received_at)
        if clock.now() < deadline - timedelta(seconds=1):  # (unless the machine is slow)
            assert not logging_chased(client, tokens["quinn"])  # not yet: not at posting
        wait_until(lambda: logging_chased(client, tokens["quinn"]), 20,
                   "the Quality Manager's chase task")
        late = (clock.now() - deadline).total_seconds()
    finally:
        assert running.stop() == 0
    assert 0 <= late < 2
    assert re.search(r"instance \d+: timers fired", running.output)
    assert count_where(db, AuditEvent, AuditEvent.action == "task_completed") == 0


def test_a_waiter_works_with_descriptors_above_1024(db):
    """select() cannot watch descriptor 1024 or above; a busy process has such numbers."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.fail(f"this machine allows only {hard} open files; the test needs 1100")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    filler = []
    try:
        while True:  # use up the descriptors below 1024, so the waiter gets higher ones
            fd = os.open(os.devnull, os.O_RDONLY)
            filler.append(fd)
            if fd >= 1024:
                break
        with wakeup.open_waiter(db) as waiter:
            assert not waiter.wait(0)
            with unit_of_work(db) as uow:
                wakeup.announce(uow, clock.now())
            assert waiter.wait(5)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
