"""Process instances: the one path that changes instance state.

Every change (start, task completion, due timers) runs inside one unit of work:
load with a row lock (PostgreSQL) and a version check (everywhere), check, run the
workflow, save the state without the spec, refresh the projections (human tasks and
the next timer due time), append audit events. The caller's unit of work commits.

This is the hot path of the system, so it speaks SQLAlchemy Core: a task completion
is one locking SELECT, one versioned UPDATE of the instance, the task-row changes and
one multi-row INSERT of audit events. The human-task projection is kept equal to the
workflow's READY user tasks, so the rows to cancel and insert are computed from the
workflow before and after the step, without reading the rows back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task, TaskState
from sqlalchemy import Connection, bindparam, insert, select, update

from engine import clock, deadlines, runtime, spiff, templates, wakeup
from engine.audit import Actor, AuditBatch
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import Conflict, Forbidden, NotFound
from engine.forms import check_form_data, complaint_owner_fields
from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from engine.permissions import may_work_on
from engine.prepared import Prepared
from engine.roles import task_assignment

RUNNING = "running"
COMPLETE = "complete"
ERROR = "error"
SUSPENDED = "suspended"
TERMINATED = "terminated"


@dataclass
class InstanceRef:
    """What a step knows of its instance row (never the state blob)."""

    id: int
    definition_id: int
    sha256: str
    status: str
    lock_version: int
    next_due_at: datetime | None = None
    #: (task id, BPMN id) of the user tasks that can be worked on after the step.
    ready_tasks: list[tuple[str, str]] = field(default_factory=list)
    #: Ids of the tasks this step made ready for a user named in the case (not a role).
    newly_assigned: list[str] = field(default_factory=list)
    #: (id, role) of the tasks this step made ready for the holders of a role.
    newly_offered: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # As the row has them (``status`` may be set ahead of a save, e.g. by a retry).
        self.stored = (self.status, self.next_due_at)

    def saved(self, status: str, next_due_at: datetime | None) -> None:
        """Record a versioned save of the row."""
        self.lock_version += 1
        self.status = status
        self.next_due_at = next_due_at
        self.stored = (status, next_due_at)


@dataclass(frozen=True)
class TaskRef:
    """The projection row of a task, read under the instance lock."""

    id: str
    instance_id: int
    bpmn_id: str
    title: str
    role: str | None
    assignee: str | None
    claimed_by: str | None
    form: str | None
    state: str
    completed_by: str | None
    due_at: datetime | None
    instructions: str | None


class CurrentDefinition(NamedTuple):
    id: int
    version: int
    sha256: str


#: Hooks run after every step inside the same transaction (e.g. the register sync).
AfterStep = Callable[[Connection, InstanceRef, BpmnWorkflow, Actor, AuditBatch], None]
_after_step_hooks: list[AfterStep] = []


def on_after_step(hook: AfterStep) -> AfterStep:
    _after_step_hooks.append(hook)
    return hook


_CURRENT_DEFINITION = Prepared(
    select(ProcessDefinition.id, ProcessDefinition.version, ProcessDefinition.sha256)
    .where(ProcessDefinition.process_id == bindparam("process_id"))
    .order_by(ProcessDefinition.version.desc())
    .limit(1)
)


_INSERT_INSTANCE = Prepared(
    insert(ProcessInstance)
    .values(definition_id=bindparam("definition_id"), process_id=bindparam("process_id"),
            status=RUNNING, state="", lock_version=1, created_by=bindparam("created_by"),
            created_at=bindparam("now"), updated_at=bindparam("now"))
    .returning(ProcessInstance.id)
)


def current_definition(conn: Connection, process_id: str) -> CurrentDefinition:
    """(id, version, sha256) of the newest version of ``process_id``."""
    definition = _CURRENT_DEFINITION.first(conn, {"process_id": process_id})
    if definition is None:
        raise NotFound(f"no process {process_id!r} is deployed")
    return CurrentDefinition(*definition)


def start_instance(
    uow: UnitOfWork, process_id: str, data: dict[str, Any], actor: Actor
) -> InstanceRef:
    """Start an instance of the current version of ``process_id`` with ``data``."""
    conn = uow.connection
    definition = current_definition(conn, process_id)
    specs = runtime.specs_for(
        definition.sha256, runtime.specs_json_for(conn, definition.id, definition.sha256))
    calendar = runtime.LazyCalendar(lambda: load_calendar(conn))
    workflow = runtime.new_workflow(specs, calendar, data)
    now = clock.now()
    (instance_id,) = _INSERT_INSTANCE.first(conn, {
        "definition_id": definition.id, "process_id": process_id, "created_by": actor.username,
        "now": now})
    ref = InstanceRef(instance_id, definition.id, definition.sha256, RUNNING, 1)
    audit = AuditBatch(actor, instance_id)
    audit.add("instance_started", process_id=process_id, version=definition.version)
    error = runtime.run_steps(workflow)
    _persist(uow, ref, workflow, audit, error, before=set())
    return ref


def complete_task(
    uow: UnitOfWork, task_id: str, data: dict[str, Any], actor: Actor
) -> InstanceRef:
    """Complete a ready human task with ``data`` and run the engine to its next wait."""
    conn = uow.connection
    ref, task_row = _lock_task(conn, task_id)
    _check_ready(task_row, actor)
    if ref.status != RUNNING:
        raise Conflict(f"the process is {ref.status}; its tasks cannot be completed now")
    sources = runtime.sources_for(conn, ref.definition_id, ref.sha256)
    check_form_data(sources, task_row.form, data)
    for name in complaint_owner_fields(sources, task_row.form):  # e.g. assign_complaint_owner
        if name in data:
            _owner_change.check_complaint_owner(conn, data[name], name)
    workflow, before = _workflow_for(uow, ref)
    task = workflow.get_task_from_id(UUID(task_id))
    if task is None or not task.has_state(TaskState.READY):
        raise Conflict("this task is no longer ready: someone else completed it")
    error = runtime.run_steps(workflow, task, data, completed_by=actor.username)
    now = clock.now()
    _COMPLETE_TASK_ROW.execute(conn, {"task_id": task_id, "at": now, "by": actor.username})
    audit = AuditBatch(actor, ref.id)
    audit.add("task_completed", task_id=task_id, bpmn_id=task_row.bpmn_id,
              title=task_row.title, data=data)
    _persist(uow, ref, workflow, audit, error, before=before - {task_id})
    return ref


def claim_task(uow: UnitOfWork, task_id: str, actor: Actor) -> TaskRef:
    conn = uow.connection
    ref, row = _lock_task(conn, task_id)
    _check_ready(row, actor)
    if ref.status != RUNNING:
        raise Conflict(f"the process is {ref.status}; its tasks cannot be taken now")
    if row.claimed_by != actor.username:
        _set_claim(conn, row, actor.username, actor, "task_claimed")
    return _task_ref(conn, task_id)


def release_task(uow: UnitOfWork, task_id: str, actor: Actor) -> TaskRef:
    conn = uow.connection
    _, row = _lock_task(conn, task_id)
    if row.claimed_by not in (None, actor.username) and not actor.has_role("admin"):
        raise Conflict(f"this task is claimed by {row.claimed_by}")
    if row.claimed_by != actor.username and not may_work_on(actor, row) \
            and not actor.has_role("admin"):
        raise Forbidden(f'you may not work on "{row.title}"')
    if row.claimed_by is not None:
        _set_claim(conn, row, None, actor, "task_released")
    return _task_ref(conn, task_id)


def _set_claim(conn: Connection, row: TaskRef, claimant: str | None, actor: Actor,
               action: str) -> None:
    conn.execute(_SET_CLAIM, {"task_id": row.id, "claimant": claimant})
    audit = AuditBatch(actor, row.instance_id)
    audit.add(action, task_id=row.id, bpmn_id=row.bpmn_id)
    audit.write(conn)


def fire_due_timers(uow: UnitOfWork, instance_id: int, actor: Actor) -> InstanceRef:
    """Refresh the timers of one instance and run what they release (the worker's step)."""
    ref = _lock_instance(uow.connection, instance_id)
    if ref.status != RUNNING:
        return ref
    workflow, before = _workflow_for(uow, ref)
    error = runtime.run_steps(workflow)
    audit = AuditBatch(actor, instance_id)
    audit.add("timers_checked",
              due_at=ref.next_due_at.isoformat() if ref.next_due_at else None)
    _persist(uow, ref, workflow, audit, error, before=before)
    return ref


# -- loading under lock ------------------------------------------------------------------

_INSTANCE_COLUMNS = (
    ProcessInstance.id,
    ProcessInstance.definition_id,
    ProcessDefinition.sha256,
    ProcessInstance.status,
    ProcessInstance.lock_version,
    ProcessInstance.next_due_at,
)
_TASK_COLUMNS = (
    HumanTask.id,
    HumanTask.instance_id,
    HumanTask.bpmn_id,
    HumanTask.title,
    HumanTask.role,
    HumanTask.assignee,
    HumanTask.claimed_by,
    HumanTask.form,
    HumanTask.state,
    HumanTask.completed_by,
    HumanTask.due_at,
    HumanTask.instructions,
)


def _valid_task_id(task_id: str) -> str:
    try:
        return str(UUID(task_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"there is no task {task_id!r}") from None


# Statements of the hot path are built once: building SQLAlchemy expressions per call
# cost more than running them.
_LOCK_TASK = Prepared(
    select(*_INSTANCE_COLUMNS, *_TASK_COLUMNS)
    .select_from(HumanTask)
    .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
    .where(HumanTask.id == bindparam("task_id"))
    .with_for_update(of=ProcessInstance)
)
_LOCK_INSTANCE = Prepared(
    select(*_INSTANCE_COLUMNS)
    .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
    .where(ProcessInstance.id == bindparam("instance_id"))
    .with_for_update(of=ProcessInstance)
)
_TASK_ROW = select(*_TASK_COLUMNS).where(HumanTask.id == bindparam("task_id"))
_STATE = select(ProcessInstance.state).where(ProcessInstance.id == bindparam("instance_id"))
_COMPLETE_TASK_ROW = Prepared(
    update(HumanTask)
    .where(HumanTask.id == bindparam("task_id"))
    .values(state="completed", completed_at=bindparam("at"), completed_by=bindparam("by"))
)
_CANCEL_TASK_ROWS = (
    update(HumanTask)
    .where(HumanTask.id.in_(bindparam("task_ids", expanding=True)), HumanTask.state == "ready")
    .values(state="cancelled", completed_at=bindparam("at"))
)
_SET_CLAIM = (
    update(HumanTask).where(HumanTask.id == bindparam("task_id"))
    .values(claimed_by=bindparam("claimant"))
)
_INSERT_TASKS = Prepared(
    insert(HumanTask.__table__)
    .values({column.name: bindparam(column.name) for column in HumanTask.__table__.columns})
)
def _save_statement(status: bool, next_due_at: bool) -> Prepared:
    """The versioned UPDATE of a step. ``status`` and ``next_due_at`` are indexed, and
    SQLite rewrites the index entry of every indexed column an UPDATE sets, changed or
    not: they are set only by a step that changes them (most steps change neither)."""
    values = {
        "state": bindparam("b_state"),
        "lock_version": bindparam("b_new_version"),
        "updated_at": bindparam("b_now"),
        "completed_at": bindparam("b_completed_at"),
        "error_message": bindparam("b_error_message"),
        "error_task_id": bindparam("b_error_task_id"),
        "error_task_bpmn_id": bindparam("b_error_task_bpmn_id"),
    }
    if status:
        values["status"] = bindparam("b_status")
    if next_due_at:
        values["next_due_at"] = bindparam("b_next_due_at")
    return Prepared(
        update(ProcessInstance.__table__)
        .where(ProcessInstance.id == bindparam("b_id"),
               ProcessInstance.lock_version == bindparam("b_version"))
        .values(values)
    )


#: By (status changes, next due time changes).
_SAVE_STATE = {(status, due): _save_statement(status, due)
               for status in (False, True) for due in (False, True)}


def _lock_task(conn: Connection, task_id: str) -> tuple[InstanceRef, TaskRef]:
    """Lock the task's instance row and read both rows as they are under that lock."""
    task_id = _valid_task_id(task_id)
    row = _LOCK_TASK.first(conn, {"task_id": task_id})
    if row is None:
        raise NotFound(f"there is no task {task_id!r}")
    n = len(_INSTANCE_COLUMNS)
    return InstanceRef(*row[:n]), TaskRef(*row[n:])


def _task_ref(conn: Connection, task_id: str) -> TaskRef:
    return TaskRef(*conn.execute(_TASK_ROW, {"task_id": task_id}).one())


def _lock_instance(conn: Connection, instance_id: int) -> InstanceRef:
    row = _LOCK_INSTANCE.first(conn, {"instance_id": instance_id})
    if row is None:
        raise NotFound(f"there is no process instance {instance_id}")
    return InstanceRef(*row)


def _check_ready(row: TaskRef, actor: Actor) -> None:
    if row.state != "ready":
        who = f" by {row.completed_by}" if row.completed_by else ""
        raise Conflict(f'the task "{row.title}" is no longer ready: it was {row.state}{who}')
    if not may_work_on(actor, row):
        raise Forbidden(f'you may not work on "{row.title}"')
    if row.claimed_by and row.claimed_by != actor.username:
        raise Conflict(f'the task "{row.title}" is claimed by {row.claimed_by}')


def _workflow_for(uow: UnitOfWork, ref: InstanceRef) -> tuple[BpmnWorkflow, set[str]]:
    """The instance's workflow and the ids of its 'ready' task rows."""
    conn = uow.connection
    calendar = runtime.LazyCalendar(lambda: load_calendar(conn))
    cached = runtime.take_cached(ref.id, ref.lock_version)
    if cached is None:
        state = conn.execute(_STATE, {"instance_id": ref.id}).scalar_one()
        specs = runtime.specs_for(ref.sha256, runtime.specs_json_for(conn, ref.definition_id,
                                                                     ref.sha256))
        workflow = runtime.load_workflow(state, specs, calendar)
        return workflow, _ready_ids(workflow)
    workflow, ready_rows = cached
    runtime.attach_calendar(workflow, calendar)
    return workflow, ready_rows


# -- saving --------------------------------------------------------------------------------

def _ready_ids(workflow: BpmnWorkflow) -> set[str]:
    return {str(t.id) for t in runtime.ready_human_tasks(workflow)}


def _persist(
    uow: UnitOfWork,
    ref: InstanceRef,
    workflow: BpmnWorkflow,
    audit: AuditBatch,
    error: runtime.StepError | None,
    before: set[str],
) -> None:
    """Save the state with a version check, then the projections and the audit events.

    ``before`` is the set of task ids whose projection rows are 'ready' now (the READY
    user tasks before the step, less a task this step completed).
    """
    conn = uow.connection
    now = clock.now()
    status, completed_at = ref.status, None
    if error is not None:
        status = ERROR
        audit.add("instance_error", task_id=error.task_id, message=error.message,
                  bpmn_id=error.bpmn_id)
    elif runtime.is_finished(workflow):
        status, completed_at = COMPLETE, now
        audit.add("instance_completed")
    next_due_at = runtime.next_timer_due(workflow) if status == RUNNING else None
    save_state(uow, ref, workflow, status, next_due_at=next_due_at, completed_at=completed_at,
               error=error, now=now)
    ready_rows = before
    if status != ERROR:
        ready_rows = _refresh_tasks(conn, ref, workflow, audit, now, before)
    for hook in _after_step_hooks:
        hook(conn, ref, workflow, audit.actor, audit)
    audit.write(conn)
    if status == RUNNING:  # a finished or broken instance will not run again soon
        instance_id, version = ref.id, ref.lock_version
        uow.after_commit(lambda: runtime.put_cached(instance_id, version, workflow, ready_rows))


def _announce_if_earlier(uow: UnitOfWork, ref: InstanceRef, new: datetime | None) -> None:
    """Wake the deadline worker when this save gives a running instance an earlier due
    time than the worker knew of (the row as it was before the save; engine/wakeup.py: a
    NOTIFY in this transaction on PostgreSQL, a datagram after the commit on SQLite)."""
    stored_status, stored_next_due_at = ref.stored
    old = stored_next_due_at if stored_status == RUNNING else None
    if new is not None and (old is None or new < old):
        wakeup.announce(uow, new)


def _refresh_tasks(
    conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow, audit: AuditBatch,
    now: datetime, before: set[str],
) -> set[str]:
    """Make the 'ready' task rows equal the workflow's READY user tasks; return their ids.

    An instance in error keeps its rows as they were (nothing can be completed until an
    admin repairs it); a finished one cancels what is still open.
    """
    ready = {str(t.id): t for t in runtime.ready_human_tasks(workflow)}
    if ref.status != RUNNING:
        ready = {}
    gone = before - ready.keys()
    if gone:
        conn.execute(_CANCEL_TASK_ROWS, {"task_ids": sorted(gone), "at": now})
    new = [task for task_id, task in ready.items() if task_id not in before]
    ref.newly_assigned = []
    ref.newly_offered = []
    if new:
        rows = [_task_projection(ref, task, now) for task in new]
        _INSERT_TASKS.execute_many(conn, rows)
        for task in new:
            audit.add("task_ready", task_id=str(task.id), bpmn_id=task.task_spec.name)
        ref.newly_assigned = [row["id"] for row in rows if row["assignee"]]
        ref.newly_offered = [(row["id"], row["role"]) for row in rows
                             if not row["assignee"] and row["role"]]
    ref.ready_tasks = [(task_id, task.task_spec.name) for task_id, task in ready.items()]
    return set(ready)


def _instructions(task: Task) -> str | None:
    source = task.task_spec.extensions.get("instructionsForEndUser")
    if not source:
        return None
    try:
        return templates.render_instructions(source, task.data)
    except templates.TemplateRenderError as exc:  # shown to the user instead of failing
        return f"(These instructions could not be shown: {exc.message})"


def _task_projection(ref: InstanceRef, task: Task, now: datetime) -> dict[str, Any]:
    spec = task.task_spec
    properties = spec.extensions.get("properties", {})
    role, assignee = task_assignment(spec.lane, task.data)
    return {
        "id": str(task.id),
        "instance_id": ref.id,
        "bpmn_id": spec.name,
        "title": deadlines.task_title(task, now),
        "lane": spec.lane,
        "role": role,
        "assignee": assignee,
        "claimed_by": None,
        "form": properties.get("formJsonSchemaFilename"),
        "instructions": _instructions(task),
        "due_at": runtime.task_due_at(task),
        "state": "ready",
        "created_at": now,
        "completed_at": None,
        "completed_by": None,
    }


# -- for admin actions (engine/admin_actions.py): the same locks and versioned save -------

def lock_instance(conn: Connection, instance_id: int) -> InstanceRef:
    """Lock an instance row (``FOR UPDATE`` on PostgreSQL) and read it under that lock."""
    return _lock_instance(conn, instance_id)


def lock_task(conn: Connection, task_id: str) -> tuple[InstanceRef, TaskRef]:
    """Lock a task's instance row and read both rows under that lock."""
    return _lock_task(conn, task_id)


def save_state(uow: UnitOfWork, ref: InstanceRef, workflow: BpmnWorkflow, status: str, *,
               next_due_at: datetime | None, completed_at: datetime | None = None,
               error: runtime.StepError | None = None, now: datetime | None = None) -> None:
    """Save the state, status and error with the version check of every step, and wake
    the worker for an earlier due time. Every step saves through here (``_persist``), and
    so does an admin action that changes a workflow without running it; the projections
    are the caller's."""
    stored_status, stored_next_due_at = ref.stored
    save = _SAVE_STATE[status != stored_status, next_due_at != stored_next_due_at]
    changed = save.execute(uow.connection, {
        "b_id": ref.id,
        "b_version": ref.lock_version,
        "b_new_version": ref.lock_version + 1,
        "b_state": spiff.dumps_state(workflow),
        "b_status": status,
        "b_now": now or clock.now(),
        "b_completed_at": completed_at,
        "b_next_due_at": next_due_at,
        "b_error_message": error.message if error else None,
        "b_error_task_id": error.task_id if error else None,
        "b_error_task_bpmn_id": error.bpmn_id if error else None,
    })
    if changed != 1:
        raise Conflict("the case was changed by someone else meanwhile; reload and retry")
    _announce_if_earlier(uow, ref, next_due_at)
    ref.saved(status, next_due_at)


def persist_step(uow: UnitOfWork, ref: InstanceRef, workflow: BpmnWorkflow, audit: AuditBatch,
                 error: runtime.StepError | None, before: set[str]) -> None:
    """Save a step an admin action ran (a retry) through the one save path of the engine."""
    _persist(uow, ref, workflow, audit, error, before)


def task_projection(ref: InstanceRef, task: Task, now: datetime) -> dict[str, Any]:
    """The ``human_tasks`` row of a READY user task."""
    return _task_projection(ref, task, now)


# The Complaints Register keeps its rows in step through an after-step hook. Imported
# here, after everything it uses is defined, so that every caller of the engine (web,
# worker, CLI) has it.
from engine import register as _register  # noqa: E402, F401, I001
# The annual review of definitions records its decisions the same way (engine/reviews.py).
from engine import reviews as _reviews  # noqa: E402, F401, I001
# Mail caused by a step (acknowledgement, "a task for you") is queued in its transaction
# (engine/notifications.py; it does not depend on the order of the hooks).
from engine import notifications as _notifications  # noqa: E402, F401, I001
# Users the ISO names in the security assessment are granted access to the case
# (engine/need_to_know_grants.py; after the register hook, which writes the case's row).
from engine import need_to_know_grants as _need_to_know_grants  # noqa: E402, F401, I001
# A form field naming the Complaint Owner must name an active complaint owner, and a
# running case's owner can be changed (engine/owner_change.py).
from engine import owner_change as _owner_change  # noqa: E402, I001
