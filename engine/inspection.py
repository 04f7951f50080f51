"""What an administrator sees of one process instance: tasks, timers, error, history.

The only reader that deserializes a stored workflow outside a step; it reads, it never
saves, and it does not touch the engine's workflow cache.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState
from sqlalchemy import select

from engine import clock, runtime
from engine.audit import Actor
from engine.calendar import iso, parse_instant
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import NotFound
from engine.models import AuditEvent, Complaint, ProcessInstance
from engine.permissions import may_see_complaint

#: Audit details that may hold the case's personal data (task form data).
_CASE_DATA_KEYS = ("data",)


def describe_instance(uow: UnitOfWork, instance_id: int, actor: Actor) -> dict[str, Any]:
    """The definition and version, status, every task, waiting timers, error and history.

    History events of a need-to-know complaint the caller may not see keep their
    actions but not the case data they carried.
    """
    session = uow.session
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"there is no process instance {instance_id}")
    definition = instance.definition
    conn = uow.connection
    specs = runtime.specs_for(
        definition.sha256, runtime.specs_json_for(conn, definition.id, definition.sha256))
    workflow = runtime.load_workflow(
        instance.state, specs, runtime.LazyCalendar(lambda: load_calendar(conn)))
    complaint = session.scalars(
        select(Complaint).where(Complaint.instance_id == instance_id)).first()
    withhold = complaint is not None and not may_see_complaint(actor, complaint)
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id))
    return {
        "id": instance.id,
        "process_id": definition.process_id,
        "version": definition.version,
        "sha256": definition.sha256,
        "status": instance.status,
        "reference": complaint.reference if complaint else None,
        "created_by": instance.created_by,
        "created_at": _iso(instance.created_at),
        "updated_at": _iso(instance.updated_at),
        "completed_at": _iso(instance.completed_at),
        "next_due_at": _iso(instance.next_due_at),
        "error": ({"message": instance.error_message, "task_id": instance.error_task_id,
                   "bpmn_id": instance.error_task_bpmn_id}
                  if instance.error_message else None),
        "tasks": _tasks(workflow),
        "timers": _timers(workflow),
        "history": [_event(event, withhold) for event in events],
    }


def _iso(instant: datetime | None) -> str | None:
    return iso(instant) if instant is not None else None


def _tasks(workflow: BpmnWorkflow) -> list[dict[str, Any]]:
    return [
        {
            "id": str(task.id),
            "bpmn_id": task.task_spec.name,
            "name": task.task_spec.bpmn_name,
            "type": task.task_spec.description,
            "process_id": wf.spec.name,
            "state": TaskState.get_name(task.state),
            "last_state_change": iso(datetime.fromtimestamp(task.last_state_change, UTC)),
        }
        for wf in (workflow, *workflow.subprocesses.values())
        for task in wf.tasks.values()
    ]


def _timers(workflow: BpmnWorkflow) -> list[dict[str, Any]]:
    """The timer events the instance waits on (same reading as runtime.next_timer_due)."""
    timers = []
    for task in workflow.event_manager.tasks.values():
        event = task.task_spec.event_definition.details(task)
        if "Time" not in event.event_type:
            continue
        timers.append({
            "task_id": str(task.id),
            "bpmn_id": task.task_spec.name,
            "name": task.task_spec.bpmn_name,
            "type": event.event_type,
            "due_at": _due(event.value),
        })
    return sorted(timers, key=lambda t: (t["due_at"] is None, t["due_at"] or "", t["bpmn_id"]))


def _due(value: Any) -> str | None:
    if not value:
        return None
    try:
        when = TimerEventDefinition.get_datetime(value)
    except Exception:  # noqa: BLE001 - a cycle/duration value that is not a date
        return None
    return iso(parse_instant(when) if when.tzinfo else when.replace(tzinfo=clock.now().tzinfo))


def _event(event: AuditEvent, withhold: bool) -> dict[str, Any]:
    details = dict(event.details or {})
    if withhold and any(key in details for key in _CASE_DATA_KEYS):
        for key in _CASE_DATA_KEYS:
            details.pop(key, None)
        details["withheld"] = "need-to-know case data"
    return {
        "at": iso(event.at),
        "actor": event.actor,
        "address": event.address,
        "action": event.action,
        "task_id": event.task_id,
        "details": details,
    }
