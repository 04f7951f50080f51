"""What an administrator may do to a process instance: suspend and resume, terminate,
retry a failed task after correcting its data, reassign a task, move to a newer version.

Every action is one transaction through the engine's own discipline (engine/instances.py):
the instance row is locked, its ``lock_version`` checked and bumped, the projections
kept equal to the workflow, and an audit event with the admin's reason written. What
can be undone has its opposite (resume undoes suspend; a reassignment can be reassigned
back, the audit event keeps who had the task). Termination and migration cannot be
undone: SpiffWorkflow cancels every open task, and a migrated instance runs on the new
spec (its old tasks are reset to it).

Migration follows SpiffWorkflow's own diff (``SpiffWorkflow.bpmn.util.diff``) and the
rule its documentation gives: an instance may move to a new version only if no task
that already ran (completed or started) has a spec the new version changed or removed,
and every subprocess it has started still exists in the new version.
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.util.diff import WorkflowDiff, diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task, TaskState
from sqlalchemy import Connection, select, update

from engine import clock, instances, notifications, runtime, wakeup
from engine.audit import Actor, AuditBatch
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.instances import ERROR, RUNNING, SUSPENDED, TERMINATED, InstanceRef
from engine.models import Complaint, HumanTask, ProcessDefinition, ProcessInstance, User
from engine.permissions import may_inspect_instances, may_see_personal_data
from engine.roles import ROLES
from engine.script_helpers import script_helpers

#: Bounds of an admin's reason (it is kept in the audit trail).
REASON_MIN, REASON_MAX = 5, 2000
#: Bound of the corrected data of a failed task, as JSON.
DATA_MAX_BYTES = 256 * 1024
#: Task data keys that would shadow a script helper for every later script.
_HELPER_NAMES = frozenset(script_helpers(None, None))  # type: ignore[arg-type]
#: Engine-set keys a correction may not change.
_RESERVED_KEYS = frozenset({runtime.COMPLETED_BY})

_REGISTRY = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
_RAN = TaskState.COMPLETED | TaskState.STARTED


def check_reason(reason: str | None) -> str:
    """The stripped reason, or InvalidData saying what is wrong with it."""
    text = (reason or "").strip()
    if len(text) < REASON_MIN:
        raise InvalidData("give the reason for this action (it is kept in the audit trail)",
                          {"reason": [f"at least {REASON_MIN} characters"]})
    if len(text) > REASON_MAX:
        raise InvalidData("the reason is too long", {"reason": [f"at most {REASON_MAX} "
                                                                "characters"]})
    return text


def _check_admin(actor: Actor) -> None:
    if not may_inspect_instances(actor):
        raise Forbidden("repairing process instances needs the admin role")


# -- suspend, resume ------------------------------------------------------------------------

def _set_status(conn: Connection, ref: InstanceRef, status: str) -> None:
    """A status change that leaves the state alone, with the version check of a step."""
    table = ProcessInstance.__table__
    result = conn.execute(
        update(table)
        .where(table.c.id == ref.id, table.c.lock_version == ref.lock_version)
        .values(status=status, lock_version=ref.lock_version + 1, updated_at=clock.now()))
    if result.rowcount != 1:
        raise Conflict("the case was changed by someone else meanwhile; reload and retry")
    ref.saved(status, ref.next_due_at)


def suspend_instance(uow: UnitOfWork, instance_id: int, reason: str,
                     actor: Actor) -> InstanceRef:
    """Stop a running instance: its timers do not fire and its tasks cannot be completed
    until it is resumed. Its open tasks and timer due times are kept as they are."""
    _check_admin(actor)
    reason = check_reason(reason)
    ref = instances.lock_instance(uow.connection, instance_id)
    if ref.status != RUNNING:
        raise Conflict(f"only a running instance can be suspended; this one is {ref.status}")
    _set_status(uow.connection, ref, SUSPENDED)
    _audit(uow, actor, ref.id, "instance_suspended", reason=reason)
    return ref


def resume_instance(uow: UnitOfWork, instance_id: int, reason: str,
                    actor: Actor) -> InstanceRef:
    """Undo a suspension: timers that fell due meanwhile fire at the worker's next round."""
    _check_admin(actor)
    reason = check_reason(reason)
    ref = instances.lock_instance(uow.connection, instance_id)
    if ref.status != SUSPENDED:
        raise Conflict(f"only a suspended instance can be resumed; this one is {ref.status}")
    _set_status(uow.connection, ref, RUNNING)
    if ref.next_due_at is not None:  # the worker did not count it while it was suspended
        wakeup.announce(uow, ref.next_due_at)
    _audit(uow, actor, ref.id, "instance_resumed", reason=reason)
    return ref


# -- terminate ------------------------------------------------------------------------------

def terminate_instance(uow: UnitOfWork, instance_id: int, reason: str,
                       actor: Actor) -> InstanceRef:
    """Cancel every open task of an unfinished instance for good (this cannot be undone)."""
    _check_admin(actor)
    reason = check_reason(reason)
    conn = uow.connection
    ref = instances.lock_instance(conn, instance_id)
    if ref.status not in (RUNNING, SUSPENDED, ERROR):
        raise Conflict(f"this instance is {ref.status}; only an unfinished one can be "
                       "terminated")
    workflow = _fresh_workflow(uow, ref)
    open_rows = _ready_rows(conn, ref.id)
    workflow.cancel()
    now = clock.now()
    instances.save_state(uow, ref, workflow, TERMINATED, next_due_at=None, completed_at=now)
    if open_rows:
        conn.execute(update(HumanTask).where(HumanTask.id.in_(sorted(open_rows)),
                                             HumanTask.state == "ready")
                     .values(state="cancelled", completed_at=now))
    ref.ready_tasks = []
    _audit(uow, actor, ref.id, "instance_terminated", reason=reason,
           cancelled_tasks=sorted(open_rows))
    return ref


# -- retry a failed task --------------------------------------------------------------------

@dataclass(frozen=True)
class FailedTask:
    """The task an instance in error failed on, with the data it ran with."""

    task_id: str
    bpmn_id: str
    title: str
    message: str | None
    data: dict[str, Any]


def failed_task(uow: UnitOfWork, instance_id: int, actor: Actor) -> FailedTask | None:
    """The failed task of an instance in error (None if it is not in error or no task
    is recorded). Its data is the admin's to correct only if they may see the case's
    personal data (``may_correct_data``)."""
    _check_admin(actor)
    row = uow.connection.execute(
        select(ProcessInstance.status, ProcessInstance.error_task_id,
               ProcessInstance.error_message).where(ProcessInstance.id == instance_id)).first()
    if row is None:
        raise NotFound(f"there is no process instance {instance_id}")
    if row.status != ERROR or not row.error_task_id:
        return None
    ref = _instance_ref(uow.connection, instance_id)
    workflow = _load_workflow(uow, ref)
    task = _task(workflow, row.error_task_id)
    if task is None:
        return None
    return FailedTask(str(task.id), task.task_spec.name,
                      task.task_spec.bpmn_name or task.task_spec.name, row.error_message,
                      json.loads(data_json(task.data)))


def data_json(data: dict[str, Any]) -> str:
    """Task data as the JSON an admin edits (values JSON cannot hold are shown as text)."""
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def may_correct_data(uow: UnitOfWork, instance_id: int, actor: Actor) -> bool:
    """Task data holds the case's personal data: correcting it needs need-to-know."""
    complaint = uow.session.scalars(
        select(Complaint).where(Complaint.instance_id == instance_id)).first()
    return complaint is None or may_see_personal_data(actor, complaint)


def parse_corrected_data(text: str) -> dict[str, Any]:
    """The corrected task data from the admin's JSON, or InvalidData saying what is wrong."""
    if len(text.encode()) > DATA_MAX_BYTES:
        raise InvalidData("the data is too large", {"data": [f"at most {DATA_MAX_BYTES} "
                                                             "bytes of JSON"]})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidData("the data is not valid JSON", {
            "data": [f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]}) from None
    if not isinstance(data, dict):
        raise InvalidData("the data must be a JSON object of variables",
                          {"data": ["a JSON object, {...}"]})
    problems = []
    for key in data:
        if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("_"):
            problems.append(f"{key!r} is not a variable name scripts can use")
        elif key in _HELPER_NAMES:
            problems.append(f"{key!r} would hide the script helper of that name")
    if problems:
        raise InvalidData("the data has invalid variable names", {"data": problems})
    return data


def retry_failed_task(uow: UnitOfWork, instance_id: int, reason: str, actor: Actor,
                      corrected: dict[str, Any] | None = None) -> InstanceRef:
    """Run the failed task of an instance in error again, with ``corrected`` data if given
    (changed, added and removed variables are applied to the data it ran with), and the
    engine steps after it. If it fails again the instance stays in error with the new
    message; the correction is kept either way (and audited)."""
    _check_admin(actor)
    reason = check_reason(reason)
    conn = uow.connection
    ref = instances.lock_instance(conn, instance_id)
    if ref.status != ERROR:
        raise Conflict(f"only an instance in error can be retried; this one is {ref.status}")
    error_task_id = conn.scalar(
        select(ProcessInstance.error_task_id).where(ProcessInstance.id == instance_id))
    workflow = _fresh_workflow(uow, ref)
    task = _task(workflow, error_task_id) if error_task_id else None
    if task is None:
        raise Conflict("no failed task is recorded for this instance: it cannot be retried; "
                       "terminate it or move it to a corrected version")
    changes: dict[str, Any] = {}
    data = None
    if corrected is not None:
        if not may_correct_data(uow, instance_id, actor):
            raise Forbidden("this case is need-to-know: correcting its data needs access to it")
        data, changes = _apply_correction(task.data, corrected)
        if not changes["set"] and not changes["removed"]:
            data = None
    audit = AuditBatch(actor, ref.id)
    # The values go under "data", which the inspector withholds like form data when the
    # reader may not see the case (engine/inspection.py).
    audit.add("task_retried", task_id=str(task.id), bpmn_id=task.task_spec.name,
              reason=reason, changed=sorted(changes.get("set", [])),
              removed=sorted(changes.get("removed", [])),
              data={key: corrected[key] for key in changes.get("set", [])} if corrected
              else {})
    workflow.reset_from_task_id(task.id)
    if data is not None:  # after the reset: making it ready merged the parent's data in
        task.data = data
    error = runtime.run_steps(workflow)
    ref.status = RUNNING  # the step decides: running, complete, or error again
    instances.persist_step(uow, ref, workflow, audit, error, before=_ready_rows(conn, ref.id))
    return ref


def _apply_correction(current: dict[str, Any], corrected: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``current`` with the variables whose JSON the admin changed, added or removed.

    Unchanged variables keep their values as they were (JSON shows a few types, such
    as dates, as text; those stay what they were unless edited)."""
    shown = json.loads(data_json(current))
    touched = [k for k in _RESERVED_KEYS if k in corrected and shown.get(k) != corrected[k]]
    if touched:
        raise InvalidData("the data has variables the engine sets",
                          {"data": [f"{k!r} cannot be changed" for k in sorted(touched)]})
    data = dict(current)
    set_keys = [k for k, v in corrected.items() if k not in shown or shown[k] != v]
    removed = [k for k in shown if k not in corrected and k not in _RESERVED_KEYS]
    for key in set_keys:
        data[key] = corrected[key]
    for key in removed:
        data.pop(key, None)
    return data, {"set": set_keys, "removed": removed}


# -- reassign a task ------------------------------------------------------------------------

def reassign_task(uow: UnitOfWork, task_id: str, reason: str, actor: Actor, *,
                  role: str | None = None, assignee: str | None = None) -> instances.TaskRef:
    """Give a ready task to a role or to one person instead; its claim is released.

    Only this task changes: later tasks follow the process's lanes as before. The audit
    event keeps who had it, so it can be given back the same way."""
    _check_admin(actor)
    reason = check_reason(reason)
    role = (role or "").strip() or None
    assignee = (assignee or "").strip() or None
    if (role is None) == (assignee is None):
        raise InvalidData("give the task to either a role or a user",
                          {"target": ["choose a role or a user, not both"]})
    if role is not None and role not in ROLES:
        raise InvalidData(f"there is no role {role!r}", {"role": [f"one of {', '.join(ROLES)}"]})
    if assignee is not None:
        user = uow.session.scalars(select(User).where(User.username == assignee)).first()
        if user is None or not user.active:
            raise InvalidData(f"there is no active user {assignee!r}",
                              {"assignee": ["not an active user"]})
    ref, row = instances.lock_task(uow.connection, task_id)
    if row.state != "ready":
        raise Conflict(f'the task "{row.title}" is no longer ready: it was {row.state}')
    if ref.status not in (RUNNING, SUSPENDED, ERROR):
        raise Conflict(f"this instance is {ref.status}; its tasks cannot be reassigned")
    if (row.role, row.assignee) == (role, assignee):
        raise InvalidData("the task is already given to them",
                          {"target": ["choose someone else"]})
    uow.connection.execute(update(HumanTask).where(HumanTask.id == row.id)
                           .values(role=role, assignee=assignee, claimed_by=None))
    _audit(uow, actor, ref.id, "task_reassigned", task_id=row.id, bpmn_id=row.bpmn_id,
           reason=reason, from_role=row.role, from_assignee=row.assignee,
           from_claimed_by=row.claimed_by, to_role=role, to_assignee=assignee)
    if assignee is not None:  # "a task for you", in this transaction
        notifications.notify_task_assigned(uow.connection, row.id, actor)
    return replace(row, role=role, assignee=assignee, claimed_by=None)


# -- move to a newer version ----------------------------------------------------------------

@dataclass
class MigrationPlan:
    """What moving an instance to ``to_version`` would do, and why it cannot, if not."""

    from_version: int
    to_version: int
    to_definition_id: int
    #: Reasons it is unsafe; empty when the move is allowed.
    problems: list[str] = field(default_factory=list)
    #: Tasks of the instance whose spec changes, and how (for the confirmation step).
    changes: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.problems


class MigrationRefused(InvalidData):
    """SpiffWorkflow's diff finds the move unsafe; ``problems`` says why."""

    def __init__(self, plan: MigrationPlan):
        super().__init__(f"this instance cannot move to version {plan.to_version}: "
                         + "; ".join(plan.problems), {"definition": plan.problems})
        self.plan = plan


def newer_versions(uow: UnitOfWork, instance_id: int) -> list[tuple[int, int]]:
    """(definition id, version) of the versions of the instance's process after its own."""
    row = uow.session.get(ProcessInstance, instance_id)
    if row is None:
        raise NotFound(f"there is no process instance {instance_id}")
    return [(d.id, d.version) for d in uow.session.execute(
        select(ProcessDefinition.id, ProcessDefinition.version)
        .where(ProcessDefinition.process_id == row.definition.process_id,
               ProcessDefinition.version > row.definition.version)
        .order_by(ProcessDefinition.version)).all()]


def plan_migration(uow: UnitOfWork, instance_id: int, definition_id: int,
                   actor: Actor) -> MigrationPlan:
    """Check (without changing anything) whether the instance may move to the version."""
    _check_admin(actor)
    ref = _instance_ref(uow.connection, instance_id)
    plan, _, _ = _plan(uow, ref, _load_workflow(uow, ref), definition_id)
    return plan


def migrate_instance(uow: UnitOfWork, instance_id: int, definition_id: int, reason: str,
                     actor: Actor) -> InstanceRef:
    """Move an unfinished instance to a newer version of its process, if SpiffWorkflow's
    diff finds it safe (else MigrationRefused, changing nothing). Cannot be undone."""
    _check_admin(actor)
    reason = check_reason(reason)
    conn = uow.connection
    ref = instances.lock_instance(conn, instance_id)
    if ref.status not in (RUNNING, SUSPENDED, ERROR):
        raise Conflict(f"this instance is {ref.status}; only an unfinished one can move to "
                       "another version")
    workflow = _fresh_workflow(uow, ref)
    plan, diffs, new = _plan(uow, ref, workflow, definition_id)
    if not plan.safe:
        raise MigrationRefused(plan)
    top_diff, sp_diffs = diffs
    (spec, subprocess_specs), sha256 = new
    migrate_workflow(top_diff, workflow, spec)
    for sp_id, sp in workflow.subprocesses.items():
        migrate_workflow(sp_diffs[sp_id], sp, subprocess_specs[sp.spec.name])
    workflow.subprocess_specs = subprocess_specs
    conn.execute(update(ProcessInstance.__table__)
                 .where(ProcessInstance.__table__.c.id == ref.id)
                 .values(definition_id=definition_id))
    ref.definition_id, ref.sha256 = definition_id, sha256
    error = None
    if ref.status == ERROR:
        row = conn.execute(select(ProcessInstance.error_message, ProcessInstance.error_task_id,
                                  ProcessInstance.error_task_bpmn_id)
                           .where(ProcessInstance.id == ref.id)).one()
        error = runtime.StepError(*row)
    next_due = runtime.next_timer_due(workflow) if ref.status != ERROR else None
    before = _ready_rows(conn, ref.id)
    instances.save_state(uow, ref, workflow, ref.status, next_due_at=next_due, error=error)
    audit = AuditBatch(actor, ref.id)
    audit.add("instance_migrated", reason=reason, from_version=plan.from_version,
              to_version=plan.to_version, to_definition_id=definition_id,
              changes=plan.changes)
    if ref.status != ERROR:  # an instance in error keeps its rows until it is retried
        _refresh_task_rows(conn, ref, workflow, audit, before)
    audit.write(conn)
    return ref


def _plan(uow: UnitOfWork, ref: InstanceRef, workflow: BpmnWorkflow, definition_id: int):
    conn = uow.connection
    current = conn.execute(select(ProcessDefinition.process_id, ProcessDefinition.version)
                           .where(ProcessDefinition.id == ref.definition_id)).one()
    target = conn.execute(select(ProcessDefinition.process_id, ProcessDefinition.version,
                                 ProcessDefinition.sha256)
                          .where(ProcessDefinition.id == definition_id)).first()
    if target is None or target.process_id != current.process_id:
        raise InvalidData(f"there is no version {definition_id} of {current.process_id}",
                          {"definition": ["not a version of this process"]})
    if target.version <= current.version:
        raise InvalidData(f"version {target.version} is not newer than the instance's "
                          f"version {current.version}",
                          {"definition": ["choose a newer version"]})
    specs = runtime.specs_for(target.sha256,
                              runtime.specs_json_for(conn, definition_id, target.sha256))
    spec, subprocess_specs = specs
    top_diff, sp_diffs = diff_workflow(_REGISTRY, workflow, spec, subprocess_specs)
    plan = MigrationPlan(current.version, target.version, definition_id)
    _judge(plan, top_diff, workflow.spec.name)
    for sp_id, sp_diff in sp_diffs.items():
        sp = workflow.subprocesses[sp_id]
        if sp_diff is None:
            plan.problems.append(f'the started subprocess "{sp.spec.name}" is not in version '
                                 f"{target.version}")
        else:
            _judge(plan, sp_diff, sp.spec.name)
    return plan, (top_diff, sp_diffs), (specs, target.sha256)


def _judge(plan: MigrationPlan, diff: WorkflowDiff, process: str) -> None:
    """SpiffWorkflow's rule: a task that already ran must not have changed or gone."""
    removed = {task.id for task in diff.removed}
    seen: set[str] = set()
    for task in [*diff.removed, *diff.changed]:
        spec = task.task_spec
        what = ("is removed" if task.id in removed else
                "is changed (" + ", ".join(_changed_attributes(diff, task)) + ")")
        label = f'"{spec.bpmn_name}" ({spec.name})' if spec.bpmn_name else spec.name
        state = TaskState.get_name(task.state).lower()
        if task.state & _RAN:
            line, into = f"{label} in {process} was {state} and {what} in the new version", \
                plan.problems
        elif spec.bpmn_name or spec.manual:
            line, into = f"{label} in {process} ({state}) {what}", plan.changes
        else:
            continue
        if line not in seen:
            seen.add(line)
            into.append(line)


def _changed_attributes(diff: WorkflowDiff, task: Task) -> list[str]:
    new_spec = diff.alignment.get(task)
    if new_spec is None:
        return []
    old = _REGISTRY.convert(task.task_spec)
    new = _REGISTRY.convert(new_spec)
    return sorted(k for k, v in old.items() if new.get(k) != v) or ["type"]


def _refresh_task_rows(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                       audit: AuditBatch, before: set[str]) -> None:
    """After a migration, make the 'ready' rows equal the workflow's READY user tasks, with
    the titles, forms and lanes of the new version (a claim stays if the task still goes
    to the same people)."""
    now = clock.now()
    ready = {str(t.id): t for t in runtime.ready_human_tasks(workflow)}
    gone = before - ready.keys()
    if gone:
        conn.execute(update(HumanTask).where(HumanTask.id.in_(sorted(gone)),
                                             HumanTask.state == "ready")
                     .values(state="cancelled", completed_at=now))
    rows = {r.id: r for r in conn.execute(
        select(HumanTask.id, HumanTask.role, HumanTask.assignee)
        .where(HumanTask.id.in_(sorted(before & ready.keys()))))}
    for task_id, task in ready.items():
        projection = instances.task_projection(ref, task, now)
        if task_id not in before:
            conn.execute(HumanTask.__table__.insert().values(**projection))
            audit.add("task_ready", task_id=task_id, bpmn_id=task.task_spec.name)
            continue
        old = rows[task_id]
        values = {k: projection[k] for k in ("bpmn_id", "title", "lane", "role", "assignee",
                                             "form", "instructions", "due_at")}
        if (old.role, old.assignee) != (values["role"], values["assignee"]):
            values["claimed_by"] = None
        conn.execute(update(HumanTask).where(HumanTask.id == task_id).values(**values))
    ref.ready_tasks = [(task_id, task.task_spec.name) for task_id, task in ready.items()]


# -- helpers --------------------------------------------------------------------------------

def _audit(uow: UnitOfWork, actor: Actor, instance_id: int, action: str, *,
           task_id: str | None = None, **details: Any) -> None:
    audit = AuditBatch(actor, instance_id)
    audit.add(action, task_id=task_id, **details)
    audit.write(uow.connection)


def _instance_ref(conn: Connection, instance_id: int) -> InstanceRef:
    row = conn.execute(
        select(ProcessInstance.id, ProcessInstance.definition_id, ProcessDefinition.sha256,
               ProcessInstance.status, ProcessInstance.lock_version,
               ProcessInstance.next_due_at)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(ProcessInstance.id == instance_id)).first()
    if row is None:
        raise NotFound(f"there is no process instance {instance_id}")
    return InstanceRef(*row)


def _load_workflow(uow: UnitOfWork, ref: InstanceRef) -> BpmnWorkflow:
    conn = uow.connection
    state = conn.scalar(select(ProcessInstance.state).where(ProcessInstance.id == ref.id))
    specs = runtime.specs_for(ref.sha256,
                              runtime.specs_json_for(conn, ref.definition_id, ref.sha256))
    return runtime.load_workflow(state, specs, runtime.LazyCalendar(lambda: load_calendar(conn)))


def _fresh_workflow(uow: UnitOfWork, ref: InstanceRef) -> BpmnWorkflow:
    """The stored workflow, loaded anew (a cached copy of it is dropped: it is changed)."""
    runtime.take_cached(ref.id, ref.lock_version)
    return _load_workflow(uow, ref)


def _ready_rows(conn: Connection, instance_id: int) -> set[str]:
    return set(conn.scalars(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                       HumanTask.state == "ready")))


def _task(workflow: BpmnWorkflow, task_id: str) -> Task | None:
    try:
        return workflow.get_task_from_id(UUID(task_id))
    except (ValueError, TaskNotFoundException):
        return None
