"""Process instances: the one path that changes instance state.

Every change (start, task completion, due timers) runs inside one unit of work:
load with a row lock (PostgreSQL) and a version check (everywhere), check, run the
workflow, save the state without the spec, refresh the projections (human tasks and
the next timer due time), append audit events. The caller's unit of work commits.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task, TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import clock, runtime, spiff
from engine.audit import Actor, record
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import Conflict, Forbidden, NotFound
from engine.forms import check_form_data
from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from engine.permissions import may_work_on
from engine.roles import COMPLAINT_OWNER_ROLE, role_for_lane

RUNNING = "running"
COMPLETE = "complete"
ERROR = "error"
SUSPENDED = "suspended"
TERMINATED = "terminated"

#: Hooks run after every step inside the same transaction (e.g. the register sync).
AfterStep = Callable[[Session, ProcessInstance, BpmnWorkflow, Actor], None]
_after_step_hooks: list[AfterStep] = []


def on_after_step(hook: AfterStep) -> AfterStep:
    _after_step_hooks.append(hook)
    return hook


def current_definition(session: Session, process_id: str) -> ProcessDefinition:
    definition = session.scalars(
        select(ProcessDefinition)
        .where(ProcessDefinition.process_id == process_id)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    ).first()
    if definition is None:
        raise NotFound(f"no process {process_id!r} is deployed")
    return definition


def start_instance(
    uow: UnitOfWork, process_id: str, data: dict[str, Any], actor: Actor
) -> ProcessInstance:
    """Start an instance of the current version of ``process_id`` with ``data``."""
    session = uow.session
    definition = current_definition(session, process_id)
    calendar = load_calendar(session)
    specs = runtime.specs_for(definition.sha256, definition.specs_json)
    workflow = runtime.new_workflow(specs, calendar, data)
    now = clock.now()
    instance = ProcessInstance(
        definition=definition,
        definition_id=definition.id,
        process_id=process_id,
        status=RUNNING,
        state="",
        created_by=actor.username,
        created_at=now,
        updated_at=now,
    )
    session.add(instance)
    session.flush()
    record(session, actor, "instance_started", instance_id=instance.id,
           details={"process_id": process_id, "version": definition.version})
    error = runtime.run_steps(workflow)
    _persist(uow, instance, workflow, actor, error)
    return instance


def complete_task(
    uow: UnitOfWork, task_id: str, data: dict[str, Any], actor: Actor
) -> ProcessInstance:
    """Complete a ready human task with ``data`` and run the engine to its next wait."""
    session = uow.session
    row = _task_row(session, task_id)
    instance = _lock_instance(session, row.instance_id)
    session.refresh(row)
    _check_ready(row, actor)
    if instance.status != RUNNING:
        raise Conflict(f"the process is {instance.status}; its tasks cannot be completed now")
    check_form_data(instance.definition.sources, row.form, data)
    workflow = _workflow_for(uow, instance)
    task = workflow.get_task_from_id(UUID(task_id))
    if task is None or not task.has_state(TaskState.READY):
        raise Conflict("this task is no longer ready: someone else completed it")
    error = runtime.run_steps(workflow, task, data)
    now = clock.now()
    row.state = "completed"
    row.completed_at = now
    row.completed_by = actor.username
    record(session, actor, "task_completed", instance_id=instance.id, task_id=task_id,
           details={"bpmn_id": row.bpmn_id, "title": row.title, "data": data})
    _persist(uow, instance, workflow, actor, error)
    return instance


def claim_task(uow: UnitOfWork, task_id: str, actor: Actor) -> HumanTask:
    session = uow.session
    row = _task_row(session, task_id)
    _lock_instance(session, row.instance_id)
    session.refresh(row)
    _check_ready(row, actor)
    if row.claimed_by != actor.username:
        row.claimed_by = actor.username
        record(session, actor, "task_claimed", instance_id=row.instance_id, task_id=task_id)
    return row


def release_task(uow: UnitOfWork, task_id: str, actor: Actor) -> HumanTask:
    session = uow.session
    row = _task_row(session, task_id)
    _lock_instance(session, row.instance_id)
    session.refresh(row)
    if row.claimed_by not in (None, actor.username) and not actor.has_role("admin"):
        raise Conflict(f"this task is claimed by {row.claimed_by}")
    if row.claimed_by is not None:
        row.claimed_by = None
        record(session, actor, "task_released", instance_id=row.instance_id, task_id=task_id)
    return row


def fire_due_timers(uow: UnitOfWork, instance_id: int, actor: Actor) -> ProcessInstance:
    """Refresh the timers of one instance and run what they release (the worker's step)."""
    session = uow.session
    instance = _lock_instance(session, instance_id)
    if instance.status != RUNNING:
        return instance
    workflow = _workflow_for(uow, instance)
    error = runtime.run_steps(workflow)
    record(session, actor, "timers_checked", instance_id=instance.id,
           details={"due_at": instance.next_due_at.isoformat() if instance.next_due_at else None})
    _persist(uow, instance, workflow, actor, error)
    return instance


def due_instance_ids(
    session: Session, now: datetime, limit: int = 100, exclude: Collection[int] = ()
) -> list[int]:
    """Running instances whose next timer is due (indexed; nothing is deserialized).

    On PostgreSQL rows locked by another worker are skipped (``SKIP LOCKED``).
    """
    query = (
        select(ProcessInstance.id)
        .where(ProcessInstance.status == RUNNING, ProcessInstance.next_due_at <= now)
        .order_by(ProcessInstance.next_due_at)
        .limit(limit)
    )
    if exclude:
        query = query.where(ProcessInstance.id.not_in(list(exclude)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def _task_row(session: Session, task_id: str) -> HumanTask:
    try:
        UUID(task_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"there is no task {task_id!r}") from None
    row = session.get(HumanTask, task_id)
    if row is None:
        raise NotFound(f"there is no task {task_id!r}")
    return row


def _check_ready(row: HumanTask, actor: Actor) -> None:
    if row.state != "ready":
        who = f" by {row.completed_by}" if row.completed_by else ""
        raise Conflict(f'the task "{row.title}" is no longer ready: it was {row.state}{who}')
    if not may_work_on(actor, row):
        raise Forbidden(f'you may not work on "{row.title}"')
    if row.claimed_by and row.claimed_by != actor.username:
        raise Conflict(f'the task "{row.title}" is claimed by {row.claimed_by}')


def _lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.scalars(
        select(ProcessInstance)
        .where(ProcessInstance.id == instance_id)
        .with_for_update(of=ProcessInstance)
        .execution_options(populate_existing=True)
    ).first()
    if instance is None:
        raise NotFound(f"there is no process instance {instance_id}")
    return instance


def _workflow_for(uow: UnitOfWork, instance: ProcessInstance) -> BpmnWorkflow:
    calendar = load_calendar(uow.session)
    workflow = runtime.take_cached(instance.id, instance.lock_version)
    if workflow is None:
        specs = runtime.specs_for(instance.definition.sha256, instance.definition.specs_json)
        workflow = runtime.load_workflow(instance.state, specs, calendar)
    else:
        runtime.attach_calendar(workflow, calendar)
    return workflow


def _persist(
    uow: UnitOfWork,
    instance: ProcessInstance,
    workflow: BpmnWorkflow,
    actor: Actor,
    error: runtime.StepError | None,
) -> None:
    session = uow.session
    now = clock.now()
    instance.state = spiff.dumps_state(workflow)
    instance.updated_at = now
    if error is not None:
        instance.status = ERROR
        instance.error_message = error.message
        instance.error_task_id = error.task_id
        instance.error_task_bpmn_id = error.bpmn_id
        record(session, actor, "instance_error", instance_id=instance.id, task_id=error.task_id,
               details={"message": error.message, "bpmn_id": error.bpmn_id})
    elif runtime.is_finished(workflow):
        instance.status = COMPLETE
        instance.completed_at = now
        record(session, actor, "instance_completed", instance_id=instance.id)
    instance.next_due_at = runtime.next_timer_due(workflow) if instance.status == RUNNING else None
    _refresh_tasks(session, instance, workflow, actor, now)
    for hook in _after_step_hooks:
        hook(session, instance, workflow, actor)
    try:
        session.flush()
    except StaleDataError:
        raise Conflict("the case was changed by someone else meanwhile; reload and retry") from None
    instance_id, version = instance.id, instance.lock_version
    uow.after_commit(lambda: runtime.put_cached(instance_id, version, workflow))


def _refresh_tasks(
    session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, actor: Actor,
    now: datetime,
) -> None:
    """Bring the human-task rows of ``instance`` in line with its READY user tasks.

    An instance in error keeps its rows as they were (nothing can be completed until an
    admin repairs it); a finished one cancels what is still open.
    """
    if instance.status == ERROR:
        return
    ready = {str(t.id): t for t in runtime.ready_human_tasks(workflow)}
    if instance.status != RUNNING:
        ready = {}
    open_rows = session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.state == "ready")
    ).all()
    for row in open_rows:
        if row.id not in ready:
            row.state = "cancelled"
            row.completed_at = now
    known = {row.id for row in open_rows}
    for task_id, task in ready.items():
        if task_id in known:
            continue
        session.add(_task_projection(instance, task, now))
        record(session, actor, "task_ready", instance_id=instance.id, task_id=task_id,
               details={"bpmn_id": task.task_spec.name})


def _task_projection(instance: ProcessInstance, task: Task, now: datetime) -> HumanTask:
    spec = task.task_spec
    properties = spec.extensions.get("properties", {})
    role = role_for_lane(spec.lane) if spec.lane else "staff"
    assignee = None
    if role == COMPLAINT_OWNER_ROLE:
        owner = task.data.get("owner")
        assignee = owner if isinstance(owner, str) and owner else None
    return HumanTask(
        id=str(task.id),
        instance_id=instance.id,
        bpmn_id=spec.name,
        title=spec.bpmn_name or spec.name,
        lane=spec.lane,
        role=role,
        assignee=assignee,
        form=properties.get("formJsonSchemaFilename"),
        due_at=runtime.task_due_at(task),
        state="ready",
        created_at=now,
    )
