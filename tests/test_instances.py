"""The durable engine: start, complete, projections, versions, timers, errors, conflicts.

Every test runs on SQLite and (when configured) on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import timedelta
from pathlib import Path

import lz4.frame
import pytest
from SpiffWorkflow.task import TaskState
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import joinedload

from engine import instances, runtime, spiff, worker
from engine.audit import Actor
from engine.calendar import BusinessCalendar, iso
from engine.case_data import case_data
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import AuditEvent, HumanTask, ProcessInstance
from engine.roles import ROLES

from . import support
from .conftest import FIXTURES

STAFF = Actor("sam", frozenset({"staff"}))
QM = Actor("quinn", frozenset({"staff", "quality_manager"}))
OWNER = Actor("owen", frozenset({"staff", "complaint_owner"}))
EVERYONE = Actor("root", frozenset(ROLES))


def deploy(db, directory: Path, note: str | None = None):
    return support.deploy(db, directory, EVERYONE, note)


def start(db, manual_clock, process_id="complaint_like", **data):
    base = {"received_at": iso(manual_clock.now()), "owner": "owen"}
    base.update(data)
    with unit_of_work(db) as uow:
        return instances.start_instance(uow, process_id, base, STAFF).id


def ready(db, instance_id):
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(HumanTask)
            .where(HumanTask.instance_id == instance_id, HumanTask.state == "ready")
            .order_by(HumanTask.created_at, HumanTask.bpmn_id)
        ).all()


def load(db, instance_id) -> ProcessInstance:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.id == instance_id)
            .options(joinedload(ProcessInstance.definition).undefer("*"))
        ).one()


def complete(db, instance_id, bpmn_id, data=None, actor=EVERYONE):
    task = next(t for t in ready(db, instance_id) if t.bpmn_id == bpmn_id)
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, data or {}, actor)
    return task


def audit_actions(db, instance_id):
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(AuditEvent.action).where(AuditEvent.instance_id == instance_id)
            .order_by(AuditEvent.id)
        ).all()


def classify(db, instance_id, classification):
    """Log, acknowledge and classify: the first three tasks of the fixture process."""
    complete(db, instance_id, "log", {"summary": "s"})
    complete(db, instance_id, "acknowledge")
    complete(db, instance_id, "classify", {"classification": classification})


@pytest.fixture
def deployed(db):
    deploy(db, FIXTURES / "engine")
    return db


def test_start_projects_first_user_task_and_stores_state_without_spec(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    tasks = ready(deployed, instance_id)
    assert [(t.bpmn_id, t.title, t.role, t.assignee) for t in tasks] == [
        ("log", "Log the complaint", "staff", None)
    ]
    instance = load(deployed, instance_id)
    assert instance.status == instances.RUNNING
    state = json.loads(instance.state)
    assert "spec" not in state and "subprocess_specs" not in state
    assert len(instance.state) < len(instance.definition.specs_json)


def _stored_state(db, instance_id):
    with db.connect() as conn:
        return conn.execute(text("SELECT state FROM process_instances WHERE id = :id"),
                            {"id": instance_id}).scalar_one()


def test_the_state_is_stored_compressed_on_sqlite_and_as_text_on_postgresql(deployed,
                                                                           manual_clock):
    instance_id = start(deployed, manual_clock)
    complete(deployed, instance_id, "log", {"summary": "Parcel arrived broken"})
    state = load(deployed, instance_id).state
    stored = _stored_state(deployed, instance_id)
    if deployed.dialect.name == "sqlite":
        assert isinstance(stored, bytes) and len(stored) * 2 < len(state)
        assert lz4.frame.decompress(stored).decode() == state
    else:  # PostgreSQL compresses large values itself
        assert stored == state


def _rewrite_state_and_step(db, manual_clock, encode) -> None:
    """Store the state as ``encode`` makes it (as an earlier version wrote it), then step."""
    instance_id = start(db, manual_clock)
    state = load(db, instance_id).state
    value = encode(state)
    with db.begin() as conn:
        conn.execute(text("UPDATE process_instances SET state = :state WHERE id = :id"),
                     {"state": value, "id": instance_id})
    assert _stored_state(db, instance_id) == value
    assert load(db, instance_id).state == state
    runtime.clear_caches()  # the next step loads the state from the database
    complete(db, instance_id, "log", {"summary": "Parcel arrived broken"})
    assert [t.bpmn_id for t in ready(db, instance_id)] == ["acknowledge"]


def test_a_state_stored_as_plain_text_still_loads_and_runs(deployed, manual_clock):
    _rewrite_state_and_step(deployed, manual_clock, lambda state: state)


def test_a_zlib_compressed_state_on_sqlite_still_loads_and_runs(sqlite_url, manual_clock):
    db = get_engine(sqlite_url)
    deploy(db, FIXTURES / "engine")
    _rewrite_state_and_step(db, manual_clock, lambda state: zlib.compress(state.encode(), 1))


def test_completing_tasks_walks_the_process_to_the_end_with_audit_trail(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    complete(deployed, instance_id, "log", {"summary": "Parcel arrived broken"})
    complete(deployed, instance_id, "acknowledge")
    complete(deployed, instance_id, "classify", {"classification": "minor"})
    assert [t.bpmn_id for t in ready(deployed, instance_id)] == ["investigate"]
    complete(deployed, instance_id, "investigate", actor=OWNER)
    complete(deployed, instance_id, "resolve", actor=OWNER)
    complete(deployed, instance_id, "close", actor=QM)
    instance = load(deployed, instance_id)
    assert instance.status == instances.COMPLETE
    assert instance.next_due_at is None
    actions = audit_actions(deployed, instance_id)
    assert actions[0] == "instance_started"
    assert actions.count("task_completed") == 6
    assert actions[-1] == "instance_completed"


def test_a_step_sets_status_and_due_time_only_when_it_changes_them(deployed, manual_clock):
    # Both columns are indexed: SQLite rewrites an index entry whenever it is set.
    saves = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE process_instances"):
            saves.append(statement.split(" WHERE ")[0])

    instance_id = start(deployed, manual_clock)
    due_before = load(deployed, instance_id).next_due_at
    event.listen(deployed, "before_cursor_execute", record)
    try:
        complete(deployed, instance_id, "log", {"summary": "Parcel arrived broken"})
        due_after_log = load(deployed, instance_id).next_due_at
        complete(deployed, instance_id, "acknowledge")
        complete(deployed, instance_id, "classify", {"classification": "minor"})
        complete(deployed, instance_id, "investigate", actor=OWNER)
        complete(deployed, instance_id, "resolve", actor=OWNER)
        complete(deployed, instance_id, "close", actor=QM)
    finally:
        event.remove(deployed, "before_cursor_execute", record)
    assert len(saves) == 6
    assert ("next_due_at" in saves[0]) == (due_after_log != due_before)
    assert all("status" not in save for save in saves[:-1])
    assert "status" in saves[-1]  # complete
    instance = load(deployed, instance_id)
    assert instance.status == instances.COMPLETE and instance.next_due_at is None


def test_gateway_sends_major_complaints_to_quality_manager(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "major")
    [task] = ready(deployed, instance_id)
    assert (task.bpmn_id, task.role) == ("qm_review", "quality_manager")


def test_complaint_owner_lane_assigns_task_to_case_owner(deployed, manual_clock):
    instance_id = start(deployed, manual_clock, owner="owen")
    classify(deployed, instance_id, "minor")
    [task] = ready(deployed, instance_id)
    assert (task.role, task.assignee) == ("complaint_owner", "owen")
    other_owner = Actor("olga", frozenset({"complaint_owner"}))
    with pytest.raises(Forbidden), unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {}, other_owner)


def test_task_due_time_comes_from_due_at_property(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    [task] = ready(deployed, instance_id)
    expected = BusinessCalendar().add_business_days(manual_clock.now(), 10)
    assert task.due_at == expected


def test_invalid_form_data_is_refused_and_changes_nothing(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    before = load(deployed, instance_id)
    [task] = ready(deployed, instance_id)
    with pytest.raises(InvalidData) as caught, unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"summary": "", "owner": "mallory"}, STAFF)
    assert set(caught.value.fields) == {"summary", "owner"}
    after = load(deployed, instance_id)
    assert (after.lock_version, after.state) == (before.lock_version, before.state)
    assert [t.id for t in ready(deployed, instance_id)] == [task.id]


def test_task_without_form_takes_no_data(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    complete(deployed, instance_id, "log", {"summary": "s"})
    [task] = ready(deployed, instance_id)
    with pytest.raises(InvalidData) as caught, unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"classification": "major"}, STAFF)
    assert "classification" in caught.value.fields


def test_completing_a_task_twice_is_a_conflict(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    task = complete(deployed, instance_id, "log", {"summary": "s"})
    with pytest.raises(Conflict, match="no longer ready"), unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"summary": "again"}, STAFF)


def test_unknown_task_is_not_found(deployed):
    with pytest.raises(NotFound), unit_of_work(deployed) as uow:
        instances.complete_task(uow, "00000000-0000-0000-0000-000000000000", {}, STAFF)
    with pytest.raises(NotFound), unit_of_work(deployed) as uow:
        instances.complete_task(uow, "not-a-uuid", {}, STAFF)


def test_role_that_may_not_work_on_task_is_forbidden(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    [task] = ready(deployed, instance_id)
    outsider = Actor("aud", frozenset({"auditor"}))
    with pytest.raises(Forbidden), unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"summary": "s"}, outsider)


def test_task_claimed_by_someone_else_cannot_be_completed(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    [task] = ready(deployed, instance_id)
    with unit_of_work(deployed) as uow:
        instances.claim_task(uow, task.id, STAFF)
    other = Actor("sue", frozenset({"staff"}))
    with pytest.raises(Conflict, match="claimed by sam"), unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"summary": "s"}, other)


def test_running_instance_stays_on_its_version_after_new_deploy(deployed, manual_clock, tmp_path):
    old_id = start(deployed, manual_clock)
    changed = tmp_path / "v2"
    (changed / "forms").mkdir(parents=True)
    source = (FIXTURES / "engine" / "complaint_like.bpmn").read_text()
    (changed / "complaint_like.bpmn").write_text(
        source.replace('name="Acknowledge"', 'name="Acknowledge receipt"'))
    for form in (FIXTURES / "engine" / "forms").iterdir():
        (changed / "forms" / form.name).write_text(form.read_text())
    result = deploy(deployed, changed, "rename acknowledgement task")
    assert [(d.process_id, d.version, d.changed) for d in result.deployed] == [
        ("complaint_like", 2, True)]
    new_id = start(deployed, manual_clock)
    for instance_id in (old_id, new_id):
        complete(deployed, instance_id, "log", {"summary": "s"})
    assert [t.title for t in ready(deployed, old_id)] == ["Acknowledge"]
    assert [t.title for t in ready(deployed, new_id)] == ["Acknowledge receipt"]
    assert load(deployed, old_id).definition.version == 1
    assert load(deployed, new_id).definition.version == 2


def test_deploying_unchanged_files_deploys_nothing(deployed):
    result = deploy(deployed, FIXTURES / "engine")
    assert [str(d) for d in result.deployed] == ["complaint_like unchanged"]


def test_boundary_timer_sets_next_due_and_fires_when_due(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    due = BusinessCalendar().add_business_days(manual_clock.now(), 10)
    assert load(deployed, instance_id).next_due_at == due
    assert worker.run_once(deployed) == 0
    manual_clock.set(due + timedelta(seconds=1))
    assert worker.run_once(deployed) == 1
    tasks = {t.bpmn_id for t in ready(deployed, instance_id)}
    assert tasks == {"investigate", "chase"}  # non-interrupting: the task stays open
    assert load(deployed, instance_id).next_due_at is None
    assert worker.run_once(deployed) == 0


def test_failing_script_leaves_loadable_instance_in_error(db, manual_clock):
    deploy(db, FIXTURES / "engine_error")
    with unit_of_work(db) as uow:
        instance_id = instances.start_instance(uow, "failing_script", {"divisor": 0}, STAFF).id
    complete(db, instance_id, "enter")
    instance = load(db, instance_id)
    assert instance.status == instances.ERROR
    assert instance.error_task_bpmn_id == "divide"
    assert "division by zero" in instance.error_message
    assert "Divide by zero" in instance.error_message
    runtime.clear_caches()
    spec, subs = spiff.loads_specs(instance.definition.specs_json)
    workflow = spiff.loads_state(instance.state, spec, subs)
    assert [t.task_spec.name for t in workflow.get_tasks(state=TaskState.ERROR)] == ["divide"]
    assert ready(db, instance_id) == []
    assert "instance_error" in audit_actions(db, instance_id)


def test_stale_version_is_a_conflict_not_a_lost_update(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    [task] = ready(deployed, instance_id)
    stale = load(deployed, instance_id)
    # Another transaction commits a change of the same instance meanwhile.
    with unit_of_work(deployed) as other:
        instances.complete_task(other, task.id, {"summary": "s"}, STAFF)
    with pytest.raises(Conflict), unit_of_work(deployed) as uow:
        uow.session.add(stale)
        stale.status = "suspended"
        uow.session.flush()


def _race(db, task_id, actors):
    results: list[object] = []
    barrier = threading.Barrier(len(actors))

    def attempt(actor):
        barrier.wait()
        try:
            with unit_of_work(db) as uow:
                instances.complete_task(uow, task_id, {"summary": actor.username}, actor)
            results.append("ok")
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(a,)) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_completions_give_one_success_and_one_conflict(deployed, manual_clock):
    for _ in range(3):
        instance_id = start(deployed, manual_clock)
        [task] = ready(deployed, instance_id)
        runtime.clear_caches()  # both threads must load from the database
        actors = [Actor("sam", frozenset({"staff"})), Actor("sue", frozenset({"staff"}))]
        results = _race(deployed, task.id, actors)
        assert sorted(map(type, results), key=str) == sorted([str, Conflict], key=str), results
        with unit_of_work(deployed, write=False) as uow:
            completed = uow.session.scalar(
                select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.instance_id == instance_id, AuditEvent.action == "task_completed"))
        assert completed == 1
        assert [t.bpmn_id for t in ready(deployed, instance_id)] == ["acknowledge"]


def test_listing_tasks_never_deserializes_a_workflow(deployed, manual_clock, monkeypatch):
    instance_id = start(deployed, manual_clock)

    def forbidden(*args, **kwargs):
        raise AssertionError("a listing deserialized a workflow")

    monkeypatch.setattr(spiff, "loads_state", forbidden)
    monkeypatch.setattr(runtime, "load_workflow", forbidden)
    assert [t.bpmn_id for t in ready(deployed, instance_id)] == ["log"]


def _deploy_timer(db, tmp_path, expression: str) -> None:
    source = (FIXTURES / "sandbox" / "timer.bpmn").read_text()
    (tmp_path / "timer.bpmn").write_text(source.replace("TIMER_PLACEHOLDER", expression))
    deploy(db, tmp_path)


def test_timer_expression_that_raises_puts_instance_in_error_not_in_a_loop(db, tmp_path):
    _deploy_timer(db, tmp_path, "add_business_days(no_such_field, 3)")
    with unit_of_work(db) as uow:
        instance_id = instances.start_instance(uow, "sandbox_timer", {}, STAFF).id
    instance = load(db, instance_id)
    assert instance.status == instances.ERROR
    assert "no_such_field" in instance.error_message
    assert instance.error_task_bpmn_id == "wait_acknowledgement"
    assert instance.next_due_at is None  # the worker will not pick it up again and again
    assert worker.run_once(db) == 0


def test_timer_date_fires_through_the_worker_at_its_due_time(db, tmp_path, manual_clock):
    _deploy_timer(db, tmp_path, "add_hours(received_at, 72)")
    with unit_of_work(db) as uow:
        instance_id = instances.start_instance(
            uow, "sandbox_timer", {"received_at": iso(manual_clock.now())}, STAFF).id
    due = manual_clock.now() + timedelta(hours=72)
    assert load(db, instance_id).next_due_at == due
    manual_clock.set(due - timedelta(seconds=1))
    assert worker.run_once(db) == 0
    manual_clock.set(due + timedelta(milliseconds=1))
    assert worker.run_once(db) == 1
    assert load(db, instance_id).status == instances.COMPLETE


def test_sandbox_escape_in_a_script_is_refused_at_deploy_time(db, tmp_path):
    source = (FIXTURES / "engine_error" / "failing_script.bpmn").read_text()
    escape = "result = ().__class__.__base__.__subclasses__()"
    (tmp_path / "escape.bpmn").write_text(source.replace("result = 1 / divisor", escape))
    with unit_of_work(db) as uow:
        problems = deploy_directory(uow.session, tmp_path, EVERYONE).problems
    assert problems and all("is not allowed" in p.message for p in problems)
    assert {p.line for p in problems} == {11}


def test_engine_records_who_completed_a_task_and_a_form_cannot_forge_it(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    [task] = ready(deployed, instance_id)
    with pytest.raises(InvalidData) as caught, unit_of_work(deployed) as uow:
        instances.complete_task(uow, task.id, {"summary": "s", "completed_by": "boss"}, STAFF)
    assert "completed_by" in caught.value.fields
    complete(deployed, instance_id, "log", {"summary": "s"}, actor=STAFF)
    instance = load(deployed, instance_id)
    spec, subs = spiff.loads_specs(instance.definition.specs_json)
    data = case_data(spiff.loads_state(instance.state, spec, subs))
    assert data["completed_by"] == "sam"


def test_ready_task_carries_its_instructions_rendered_sandboxed(deployed, manual_clock):
    instance_id = start(deployed, manual_clock, owner="<script>alert(1)</script>")
    [task] = ready(deployed, instance_id)
    assert task.instructions == (
        "Log the complaint; its owner will be &lt;script&gt;alert(1)&lt;/script&gt;")
