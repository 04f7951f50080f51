"""Admin actions on process instances: suspend/resume, terminate, retry, reassign, migrate.

Every test runs on SQLite and (when configured) on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import admin_actions, instances, worker
from engine.audit import Actor
from engine.calendar import BusinessCalendar
from engine.db import unit_of_work
from engine.errors import Conflict, Forbidden, InvalidData
from engine.inspection import InstanceFilter, element_states, list_instances
from engine.models import AuditEvent, Complaint, HumanTask, ProcessDefinition
from engine.users import create_user
from web.queries import ready_tasks_for

from .conftest import FIXTURES
from .test_instances import (
    OWNER,
    STAFF,
    audit_actions,
    classify,
    complete,
    deploy,
    load,
    ready,
    start,
)

ADMIN = Actor("ada", frozenset({"admin"}))
REASON = "Customer asked us to pause the case"


@pytest.fixture
def deployed(db):
    deploy(db, FIXTURES / "engine")
    return db


def act(db, action, *args, **kwargs):
    with unit_of_work(db) as uow:
        return action(uow, *args, **kwargs)


def details(db, instance_id, action):
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(AuditEvent).where(AuditEvent.instance_id == instance_id,
                                     AuditEvent.action == action)).one()


# -- suspend and resume ---------------------------------------------------------------------

def test_suspended_instance_timers_do_not_fire_and_tasks_cannot_be_completed(
        deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    act(deployed, admin_actions.suspend_instance, instance_id, REASON, ADMIN)
    assert load(deployed, instance_id).status == instances.SUSPENDED
    due = BusinessCalendar().add_business_days(manual_clock.now(), 10)
    manual_clock.set(due + timedelta(minutes=1))
    assert worker.run_once(deployed) == 0
    assert {t.bpmn_id for t in ready(deployed, instance_id)} == {"investigate"}
    with pytest.raises(Conflict, match="suspended"):
        complete(deployed, instance_id, "investigate", actor=OWNER)
    [task] = ready(deployed, instance_id)
    with pytest.raises(Conflict, match="suspended"), unit_of_work(deployed) as uow:
        instances.claim_task(uow, task.id, OWNER)
    assert details(deployed, instance_id, "instance_suspended").details["reason"] == REASON


def test_resume_restores_the_instance_and_its_overdue_timer_fires(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    act(deployed, admin_actions.suspend_instance, instance_id, REASON, ADMIN)
    manual_clock.advance(timedelta(days=30))
    assert worker.run_once(deployed) == 0
    act(deployed, admin_actions.resume_instance, instance_id, "Customer replied", ADMIN)
    assert load(deployed, instance_id).status == instances.RUNNING
    assert worker.run_once(deployed) == 1
    assert {t.bpmn_id for t in ready(deployed, instance_id)} == {"investigate", "chase"}
    complete(deployed, instance_id, "investigate", actor=OWNER)
    assert "instance_resumed" in audit_actions(deployed, instance_id)


def test_admin_actions_need_the_admin_role_and_a_reason(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    with pytest.raises(Forbidden):
        act(deployed, admin_actions.suspend_instance, instance_id, REASON, STAFF)
    with pytest.raises(InvalidData) as error:
        act(deployed, admin_actions.suspend_instance, instance_id, "  ", ADMIN)
    assert "reason" in error.value.fields
    assert load(deployed, instance_id).status == instances.RUNNING
    with pytest.raises(Conflict, match="only a suspended instance"):
        act(deployed, admin_actions.resume_instance, instance_id, REASON, ADMIN)


# -- terminate ------------------------------------------------------------------------------

def test_terminate_cancels_open_tasks_and_records_the_reason(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    act(deployed, admin_actions.terminate_instance, instance_id, "Duplicate of CMP-1", ADMIN)
    instance = load(deployed, instance_id)
    assert (instance.status, instance.next_due_at) == (instances.TERMINATED, None)
    assert instance.completed_at is not None
    assert ready(deployed, instance_id) == []
    with unit_of_work(deployed, write=False) as uow:
        states = {t.bpmn_id: t.state for t in uow.session.scalars(
            select(HumanTask).where(HumanTask.instance_id == instance_id))}
    assert states["investigate"] == "cancelled"
    event = details(deployed, instance_id, "instance_terminated")
    assert (event.actor, event.details["reason"]) == ("ada", "Duplicate of CMP-1")
    manual_clock.advance(timedelta(days=60))
    assert worker.run_once(deployed) == 0
    with pytest.raises(Conflict):
        act(deployed, admin_actions.resume_instance, instance_id, REASON, ADMIN)


# -- retry after correcting the data --------------------------------------------------------

def _failed(db):
    deploy(db, FIXTURES / "engine_error")
    with unit_of_work(db) as uow:
        instance_id = instances.start_instance(uow, "failing_script", {"divisor": 0}, STAFF).id
    complete(db, instance_id, "enter")
    assert load(db, instance_id).status == instances.ERROR
    return instance_id


def test_retry_after_data_correction_moves_the_instance_out_of_error(db, manual_clock):
    instance_id = _failed(db)
    with unit_of_work(db, write=False) as uow:
        failed = admin_actions.failed_task(uow, instance_id, ADMIN)
    assert (failed.bpmn_id, failed.data["divisor"]) == ("divide", 0)
    corrected = admin_actions.parse_corrected_data(json.dumps({**failed.data, "divisor": 4}))
    act(db, admin_actions.retry_failed_task, instance_id, "Divisor was mistyped", ADMIN,
        corrected)
    instance = load(db, instance_id)
    assert (instance.status, instance.error_message) == (instances.RUNNING, None)
    assert [t.bpmn_id for t in ready(db, instance_id)] == ["after"]
    event = details(db, instance_id, "task_retried")
    assert (event.details["changed"], event.details["data"]) == (["divisor"], {"divisor": 4})
    complete(db, instance_id, "after")
    assert load(db, instance_id).status == instances.COMPLETE


def test_retry_without_correction_stays_in_error_with_the_new_message(db, manual_clock):
    instance_id = _failed(db)
    act(db, admin_actions.retry_failed_task, instance_id, "Try once more", ADMIN)
    instance = load(db, instance_id)
    assert instance.status == instances.ERROR
    assert "division by zero" in instance.error_message
    assert audit_actions(db, instance_id)[-2:] == ["task_retried", "instance_error"]


def test_corrected_data_must_be_a_json_object_of_variable_names(db):
    for text, message in [("{", "not valid JSON"), ("[1]", "JSON object"),
                          ('{"not a name": 1}', "variable name"),
                          ('{"add_business_days": 1}', "script helper")]:
        with pytest.raises(InvalidData) as error:
            admin_actions.parse_corrected_data(text)
        assert message in " ".join(error.value.fields["data"]) + str(error.value)


def test_retry_is_refused_for_an_instance_not_in_error(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    with pytest.raises(Conflict, match="only an instance in error"):
        act(deployed, admin_actions.retry_failed_task, instance_id, REASON, ADMIN)


# -- reassign -------------------------------------------------------------------------------

def test_reassign_changes_who_sees_the_task_and_records_who_had_it(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    with unit_of_work(deployed) as uow:
        create_user(uow.session, "olga", "a-long-password", ["staff", "complaint_owner"])
    [task] = ready(deployed, instance_id)
    olga = Actor("olga", frozenset({"staff", "complaint_owner"}))
    with unit_of_work(deployed, write=False) as uow:
        owens = ready_tasks_for(uow.session, OWNER.username, OWNER.roles)
        assert [t.id for t in owens] == [task.id]
        assert ready_tasks_for(uow.session, olga.username, olga.roles) == []
    act(deployed, admin_actions.reassign_task, task.id, "Owen is on leave", ADMIN,
        assignee="olga")
    with unit_of_work(deployed, write=False) as uow:
        assert ready_tasks_for(uow.session, OWNER.username, OWNER.roles) == []
        assert [t.id for t in ready_tasks_for(uow.session, olga.username, olga.roles)] == [task.id]
    with pytest.raises(Forbidden):
        complete(deployed, instance_id, "investigate", actor=OWNER)
    event = details(deployed, instance_id, "task_reassigned")
    assert (event.details["from_assignee"], event.details["to_assignee"]) == ("owen", "olga")
    complete(deployed, instance_id, "investigate", actor=olga)


def test_reassign_refuses_unknown_users_and_roles(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    [task] = ready(deployed, instance_id)
    with pytest.raises(InvalidData):
        act(deployed, admin_actions.reassign_task, task.id, REASON, ADMIN, assignee="nobody")
    with pytest.raises(InvalidData):
        act(deployed, admin_actions.reassign_task, task.id, REASON, ADMIN, role="wizard")
    act(deployed, admin_actions.reassign_task, task.id, REASON, ADMIN, role="quality_manager")
    [task] = ready(deployed, instance_id)
    assert (task.role, task.assignee) == ("quality_manager", None)


# -- migrate --------------------------------------------------------------------------------

def _deploy_variant(db, tmp_path, old: str, new: str) -> int:
    target = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIXTURES / "engine", target)
    bpmn = target / "complaint_like.bpmn"
    text = bpmn.read_text()
    assert old in text
    bpmn.write_text(text.replace(old, new))
    deploy(db, target)
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(select(ProcessDefinition.id)
                                   .order_by(ProcessDefinition.version.desc())).first()


def test_migrate_to_a_compatible_newer_version_moves_the_instance(
        deployed, manual_clock, tmp_path):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    new_id = _deploy_variant(deployed, tmp_path, 'name="Investigate"',
                             'name="Investigate the complaint"')
    with unit_of_work(deployed, write=False) as uow:
        plan = admin_actions.plan_migration(uow, instance_id, new_id, ADMIN)
    assert plan.safe and (plan.from_version, plan.to_version) == (1, 2)
    assert any("investigate" in change for change in plan.changes)
    act(deployed, admin_actions.migrate_instance, instance_id, new_id, "Policy v2", ADMIN)
    instance = load(deployed, instance_id)
    assert (instance.definition_id, instance.definition.version) == (new_id, 2)
    [task] = ready(deployed, instance_id)
    assert task.title == "Investigate the complaint"
    assert instance.next_due_at is not None
    event = details(deployed, instance_id, "instance_migrated")
    assert (event.details["from_version"], event.details["to_version"]) == (1, 2)
    complete(deployed, instance_id, "investigate", actor=OWNER)
    complete(deployed, instance_id, "resolve", actor=OWNER)


def test_migrate_to_an_incompatible_version_is_refused_with_the_reason(
        deployed, manual_clock, tmp_path):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    new_id = _deploy_variant(deployed, tmp_path, 'name="Log the complaint"',
                             'name="Record the complaint"')
    before = load(deployed, instance_id)
    with pytest.raises(admin_actions.MigrationRefused) as error:
        act(deployed, admin_actions.migrate_instance, instance_id, new_id, "Policy v2", ADMIN)
    assert any('"Log the complaint" (log)' in p and "completed" in p
               for p in error.value.plan.problems)
    after = load(deployed, instance_id)
    assert (after.definition_id, after.lock_version) == (before.definition_id,
                                                         before.lock_version)
    assert "instance_migrated" not in audit_actions(deployed, instance_id)


def test_migrate_refuses_an_older_or_the_same_version(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    with pytest.raises(InvalidData, match="not newer"):
        act(deployed, admin_actions.migrate_instance, instance_id,
            load(deployed, instance_id).definition_id, REASON, ADMIN)


# -- inspection -----------------------------------------------------------------------------

def test_element_states_mark_completed_active_and_waiting_elements(deployed, manual_clock):
    instance_id = start(deployed, manual_clock)
    classify(deployed, instance_id, "minor")
    with unit_of_work(deployed, write=False) as uow:
        workflow = admin_actions._load_workflow(
            uow, admin_actions._instance_ref(uow.connection, instance_id))
    states = element_states(workflow)["complaint_like"]
    assert {"log", "acknowledge", "classify", "set_deadlines"} <= set(states["completed"])
    assert states["active"] == ["investigate"]
    assert states["waiting"] == ["investigate_overdue"]
    assert states["errored"] == []


def test_instance_list_filters_by_status_process_version_error_and_timer(
        db, manual_clock):
    deploy(db, FIXTURES / "engine")
    waiting = start(db, manual_clock)
    classify(db, waiting, "minor")
    fresh = start(db, manual_clock)
    broken = _failed(db)
    with unit_of_work(db, write=False) as uow:
        def ids(**kwargs):
            rows, total = list_instances(uow, InstanceFilter(**kwargs))
            assert total == len(rows)
            return [row.id for row in rows]
        assert ids() == [broken, fresh, waiting]
        assert ids(in_error=True) == [broken]
        assert ids(status="error") == [broken]
        assert ids(waiting_on_timer=True) == [waiting]
        assert ids(process_id="complaint_like") == [fresh, waiting]
        assert ids(process_id="complaint_like", version=2) == []
        rows, total = list_instances(uow, InstanceFilter(), page=2, per_page=2)
        assert ([r.id for r in rows], total) == ([waiting], 3)


def test_correcting_data_of_a_need_to_know_case_needs_access_to_it(db, manual_clock):
    instance_id = _failed(db)
    now = manual_clock.now()
    with unit_of_work(db) as uow:
        uow.session.add(Complaint(
            reference="CMP-2026-000099", instance_id=instance_id, channel="email",
            received_at=now, complainant_name="Zed Private", summary="s", description="d",
            status="logged", need_to_know=True, owner="owen", created_at=now, updated_at=now))
    with unit_of_work(db, write=False) as uow:
        assert not admin_actions.may_correct_data(uow, instance_id, ADMIN)
    with pytest.raises(Forbidden, match="need-to-know"):
        act(db, admin_actions.retry_failed_task, instance_id, REASON, ADMIN, {"divisor": 2})
    assert load(db, instance_id).status == instances.ERROR
    iso_admin = Actor("ivy", frozenset({"admin", "information_security_officer"}))
    act(db, admin_actions.retry_failed_task, instance_id, REASON, iso_admin, {"divisor": 2})
    assert load(db, instance_id).status == instances.RUNNING


def test_an_instance_in_error_moves_to_a_corrected_version_and_retries_on_it(
        db, manual_clock, tmp_path):
    instance_id = _failed(db)
    shutil.copytree(FIXTURES / "engine_error", tmp_path / "fixed")
    bpmn = tmp_path / "fixed" / "failing_script.bpmn"
    bpmn.write_text(bpmn.read_text().replace("result = 1 / divisor",
                                             "result = 1 / divisor if divisor else 0"))
    deploy(db, tmp_path / "fixed")
    with unit_of_work(db, write=False) as uow:
        [(new_id, version)] = admin_actions.newer_versions(uow, instance_id)
    act(db, admin_actions.migrate_instance, instance_id, new_id, "Script fixed in v2", ADMIN)
    instance = load(db, instance_id)
    assert (instance.status, instance.definition.version) == (instances.ERROR, version)
    assert instance.error_task_bpmn_id == "divide"  # the failure is kept until the retry
    act(db, admin_actions.retry_failed_task, instance_id, "Run the fixed script", ADMIN)
    assert load(db, instance_id).status == instances.RUNNING
    assert [t.bpmn_id for t in ready(db, instance_id)] == ["after"]
