"""Prepared statements of the hot path give what SQLAlchemy Core gives, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, event, select, update

from engine import audit, instances
from engine.audit import Actor, AuditBatch
from engine.db import unit_of_work
from engine.models import AuditEvent, HumanTask, ProcessInstance
from engine.prepared import Prepared

from .test_instances import FIXTURES, deploy, start

_TASKS = (
    select(HumanTask.id, HumanTask.instance_id, HumanTask.title, HumanTask.due_at,
           HumanTask.created_at, HumanTask.state, ProcessInstance.next_due_at,
           ProcessInstance.state)
    .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    .where(HumanTask.instance_id == bindparam("instance_id"))
    .order_by(HumanTask.created_at)
)


def test_a_prepared_select_converts_rows_as_core_does(db, manual_clock):
    deploy(db, FIXTURES / "engine")
    instance_id = start(db, manual_clock)
    with unit_of_work(db, write=False) as uow:
        core = [tuple(row) for row in uow.connection.execute(_TASKS, {"instance_id": instance_id})]
        prepared = Prepared(_TASKS)
        assert prepared.all(uow.connection, {"instance_id": instance_id}) == core
        assert prepared.first(uow.connection, {"instance_id": instance_id}) == core[0]
        assert prepared.first(uow.connection, {"instance_id": -1}) is None
    created_at = core[0][4]
    assert created_at.tzinfo is not None and created_at == manual_clock.now()
    assert isinstance(core[0][7], str) and core[0][7].startswith("{")  # the state, as text


def test_prepared_writes_store_what_core_stores(db, manual_clock):
    deploy(db, FIXTURES / "engine")
    instance_id = start(db, manual_clock)
    when = datetime(2027, 1, 4, 9, 30, tzinfo=UTC)
    batch = AuditBatch(Actor("sam", frozenset({"staff"}), address="203.0.113.9"), instance_id)
    batch.add("noted", task_id=None, nested={"list": [1, "two"], "flag": True})
    with unit_of_work(db) as uow:
        batch.write(uow.connection)
        changed = Prepared(
            update(HumanTask).where(HumanTask.instance_id == bindparam("instance_id"))
            .values(due_at=bindparam("due"), claimed_by="sam")
        ).execute(uow.connection, {"instance_id": instance_id, "due": when + timedelta(days=1)})
    assert changed == 1
    with unit_of_work(db, write=False) as uow:
        event_row = uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "noted")).one()
        task = uow.session.scalars(
            select(HumanTask).where(HumanTask.instance_id == instance_id)).one()
    assert event_row.details == {"nested": {"list": [1, "two"], "flag": True}}
    assert event_row.address == "203.0.113.9" and event_row.instance_id == instance_id
    assert task.due_at == when + timedelta(days=1) and task.claimed_by == "sam"


def test_prepared_statements_are_events_of_the_connection(db, manual_clock):
    # Statement counters (tests/test_worker.py, bench/timers.py) must see them.
    deploy(db, FIXTURES / "engine")
    instance_id = start(db, manual_clock)
    seen = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db, "before_cursor_execute", count)
    try:
        with unit_of_work(db, write=False) as uow:
            Prepared(_TASKS).all(uow.connection, {"instance_id": instance_id})
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert any("FROM human_tasks" in statement for statement in seen)


def test_the_engines_insert_statements_cover_every_column():
    # A column added to the table without a value here would be left out silently.
    assert set(instances._INSERT_TASKS.statement.compile().binds) == {
        column.name for column in HumanTask.__table__.columns}
    assert set(audit._INSERT_EVENTS.statement.compile().binds) == {
        column.name for column in AuditEvent.__table__.columns} - {"id"}
