"""What an administrator sees of process instances: the list with its filters, and of
one instance its tasks, timers, error, history, case data and diagram states.

The only reader that deserializes a stored workflow outside a step; it reads, it never
saves, and it does not touch the engine's workflow cache. The list is plain SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState
from sqlalchemy import func, select

from engine import clock, runtime
from engine.audit import Actor
from engine.calendar import iso, parse_instant
from engine.case_data import case_data
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import NotFound
from engine.models import AuditEvent, Complaint, ProcessDefinition, ProcessInstance
from engine.permissions import may_see_complaint, may_see_personal_data

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


# -- the diagram: which elements completed, are active, wait on a timer, failed -------------

#: Marker names of the diagram, in the order they are applied (a later one wins).
ELEMENT_STATES = ("completed", "waiting", "active", "errored")


def element_states(workflow: BpmnWorkflow) -> dict[str, dict[str, list[str]]]:
    """Per process (the top one and every started subprocess): the BPMN ids of its
    elements that completed, are active (ready or started), wait on a timer, or failed."""
    waiting_timers = {t["task_id"] for t in _timers(workflow)}
    result: dict[str, dict[str, set[str]]] = {}
    for wf in (workflow, *workflow.subprocesses.values()):
        states = result.setdefault(wf.spec.name, {name: set() for name in ELEMENT_STATES})
        for task in wf.tasks.values():
            bpmn_id = task.task_spec.name
            if task.state == TaskState.COMPLETED:
                states["completed"].add(bpmn_id)
            elif task.state in (TaskState.READY, TaskState.STARTED):
                states["active"].add(bpmn_id)
            elif task.state == TaskState.ERROR:
                states["errored"].add(bpmn_id)
            elif task.state == TaskState.WAITING and str(task.id) in waiting_timers:
                states["waiting"].add(bpmn_id)
    return {process: {name: sorted(ids) for name, ids in states.items()}
            for process, states in result.items()}


_PROCESS_TAG = re.compile(r"<(?:\w+:)?process\b[^>]*\bid=\"([^\"]+)\"")


def diagram_file(sources: dict[str, str], process_id: str) -> str | None:
    """The name of the BPMN file of a definition version that holds ``process_id``."""
    for name, text in sorted(sources.items()):
        if name.endswith(".bpmn") and process_id in _PROCESS_TAG.findall(text):
            return name
    return None


def instance_diagrams(uow: UnitOfWork, instance_id: int) -> list[dict[str, Any]]:
    """The diagrams of an instance for the viewer: its process first, then each started
    subprocess, with the BPMN XML and the element states to mark on it."""
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"there is no process instance {instance_id}")
    definition = instance.definition
    workflow = _load(uow, instance)
    sources = runtime.sources_for(uow.connection, definition.id, definition.sha256)
    diagrams = []
    for process_id, states in element_states(workflow).items():
        name = diagram_file(sources, process_id)
        if name is None:
            continue
        diagrams.append({"process_id": process_id, "file": name, "xml": sources[name],
                         **states})
    return diagrams


def _load(uow: UnitOfWork, instance: ProcessInstance) -> BpmnWorkflow:
    definition = instance.definition
    conn = uow.connection
    specs = runtime.specs_for(
        definition.sha256, runtime.specs_json_for(conn, definition.id, definition.sha256))
    return runtime.load_workflow(
        instance.state, specs, runtime.LazyCalendar(lambda: load_calendar(conn)))


# -- the case data, masked ------------------------------------------------------------------

WITHHELD = "(withheld)"


def masked_case_data(uow: UnitOfWork, instance_id: int, actor: Actor
                     ) -> tuple[dict[str, Any], bool]:
    """The instance's case data, and whether personal data in it was masked: the
    complainant's details of a need-to-know case the actor may not see are withheld
    (engine.permissions.may_see_personal_data, as on the register's case page)."""
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"there is no process instance {instance_id}")
    data = case_data(_load(uow, instance))
    complaint = uow.session.scalars(
        select(Complaint).where(Complaint.instance_id == instance_id)).first()
    if complaint is None or may_see_personal_data(actor, complaint):
        return data, False
    # Imported here: engine.register imports engine.instances, which must load first.
    from engine.register import COMPLAINANT_FIELDS

    complainant = data.get("complainant")
    if isinstance(complainant, dict):
        data["complainant"] = {key: (WITHHELD if value not in (None, "") else value)
                               for key, value in complainant.items()}
    for key in COMPLAINANT_FIELDS:
        if f"complainant_{key}" in data:
            data[f"complainant_{key}"] = WITHHELD
    return data, True


# -- the list -------------------------------------------------------------------------------

INSTANCE_PAGE_SIZE = 50


@dataclass(frozen=True)
class InstanceFilter:
    status: str | None = None
    process_id: str | None = None
    version: int | None = None
    in_error: bool = False
    waiting_on_timer: bool = False


@dataclass(frozen=True)
class InstanceRow:
    id: int
    process_id: str
    version: int
    status: str
    reference: str | None
    created_at: datetime
    updated_at: datetime
    next_due_at: datetime | None
    error_message: str | None


def list_instances(uow: UnitOfWork, where: InstanceFilter, page: int = 1,
                   per_page: int = INSTANCE_PAGE_SIZE) -> tuple[list[InstanceRow], int]:
    """One page of instances, newest first, and how many match (no workflow is loaded)."""
    conditions = []
    if where.status:
        conditions.append(ProcessInstance.status == where.status)
    if where.process_id:
        conditions.append(ProcessDefinition.process_id == where.process_id)
    if where.version is not None:
        conditions.append(ProcessDefinition.version == where.version)
    if where.in_error:
        conditions.append(ProcessInstance.error_message.is_not(None))
    if where.waiting_on_timer:
        conditions.append(ProcessInstance.next_due_at.is_not(None))
    joined = (select(ProcessInstance.id)
              .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
              .where(*conditions))
    total = uow.connection.scalar(select(func.count()).select_from(joined.subquery()))
    rows = uow.connection.execute(
        select(ProcessInstance.id, ProcessDefinition.process_id, ProcessDefinition.version,
               ProcessInstance.status, Complaint.reference, ProcessInstance.created_at,
               ProcessInstance.updated_at, ProcessInstance.next_due_at,
               ProcessInstance.error_message)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .outerjoin(Complaint, Complaint.instance_id == ProcessInstance.id)
        .where(*conditions)
        .order_by(ProcessInstance.id.desc())
        .limit(per_page).offset((page - 1) * per_page))
    return [InstanceRow(*row) for row in rows], total or 0


def process_versions(uow: UnitOfWork) -> dict[str, list[int]]:
    """Every deployed process and its versions (the list's filter choices)."""
    versions: dict[str, list[int]] = {}
    for process_id, version in uow.connection.execute(
            select(ProcessDefinition.process_id, ProcessDefinition.version)
            .order_by(ProcessDefinition.process_id, ProcessDefinition.version)):
        versions.setdefault(process_id, []).append(version)
    return versions
