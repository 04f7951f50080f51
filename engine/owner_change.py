"""Giving a running complaint another Complaint Owner (policy 5.2 and 8.1).

The owner is the case variable ``owner``: tasks in the "Complaint Owner" lane are
assigned to the user it names (engine.roles.task_assignment reads it from the task's
data when the task becomes ready), and the register's ``owner`` column, which
need-to-know visibility follows, is derived from the case data (engine.case_data).

A change is one transaction with the engine's discipline (engine/instances.py): the
instance row is locked and its ``lock_version`` checked and bumped, and

* ``owner`` is set in the data of every unfinished task that carries it (ready and
  waiting tasks: what later tasks inherit), so later Complaint Owner tasks go to the
  new owner;
* the change is recorded in the workflow's data (``engine.case_data.CASE_CHANGES``),
  so the case data, and with it the register row, shows the new owner now and after
  every later step;
* the open Complaint Owner tasks of the old owner move to the new one, their claims
  released, and the new owner is told of each by mail;
* the audit trail records ``owner_changed`` with both owners and the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState
from sqlalchemy import Connection, select, update

from engine import admin_actions, clock, instances, notifications, register, runtime
from engine.audit import Actor, AuditBatch
from engine.case_data import CASE_CHANGES, case_data
from engine.closures import load_calendar
from engine.db import UnitOfWork
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.instances import RUNNING, SUSPENDED, InstanceRef
from engine.models import Complaint, HumanTask, ProcessInstance, User, UserRole
from engine.permissions import may_change_owner, may_see_complaint
from engine.roles import COMPLAINT_OWNER_ROLE

#: The case variable naming the Complaint Owner (engine.roles.task_assignment).
OWNER_KEY = "owner"


@dataclass(frozen=True)
class OwnerChange:
    reference: str
    old_owner: str | None
    new_owner: str
    moved_tasks: list[str]


def complaint_owners(conn: Connection) -> list[str]:
    """Usernames of the active users holding the complaint_owner role, sorted."""
    return list(conn.scalars(
        select(User.username).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == COMPLAINT_OWNER_ROLE, User.active.is_(True))
        .order_by(User.username)))


def check_complaint_owner(conn: Connection, username: str | None,
                          field: str = OWNER_KEY) -> str:
    """``username`` stripped, or InvalidData unless it names an active complaint owner."""
    name = (username or "").strip() if isinstance(username, str | None) else ""
    if not name:
        raise InvalidData("choose the new Complaint Owner", {field: ["this field is required"]})
    holds = conn.scalar(
        select(User.id).join(UserRole, UserRole.user_id == User.id)
        .where(User.username == name, User.active.is_(True),
               UserRole.role == COMPLAINT_OWNER_ROLE))
    if holds is None:
        raise InvalidData(f"{name} is not an active user with the complaint_owner role",
                          {field: [f"{name} is not an active complaint owner"]})
    return name


def change_owner(uow: UnitOfWork, reference_or_instance: str | int, new_owner: str | None,
                 reason: str | None, actor: Actor) -> OwnerChange:
    """Give the complaint (by reference, or by its instance id) to ``new_owner``."""
    if not may_change_owner(actor):
        raise Forbidden("changing the Complaint Owner needs the Quality Manager, the "
                        "Operations Director or an admin")
    conn = uow.connection
    complaint = _complaint(uow, reference_or_instance)
    if not may_see_complaint(actor, complaint):
        raise NotFound(f"there is no complaint {reference_or_instance}")
    new_owner = check_complaint_owner(conn, new_owner)
    reason = admin_actions.check_reason(reason)
    ref = instances.lock_instance(conn, complaint.instance_id)
    status = conn.scalar(select(Complaint.status).where(Complaint.id == complaint.id))
    if ref.status not in (RUNNING, SUSPENDED) or status == "closed":
        raise Conflict(f"complaint {complaint.reference} is "
                       f"{status if status == 'closed' else ref.status}: its owner can no "
                       "longer change")
    workflow = _fresh_workflow(uow, ref)
    old_owner = case_data(workflow).get(OWNER_KEY) or complaint.owner
    if old_owner == new_owner:
        raise InvalidData(f"{new_owner} is the Complaint Owner already",
                          {OWNER_KEY: ["choose someone else"]})
    _set_owner(workflow, new_owner)
    instances.save_state(uow, ref, workflow, ref.status, next_due_at=ref.next_due_at)
    moved = _refresh_ready_rows(conn, ref, workflow, old_owner, new_owner)
    audit = AuditBatch(actor, ref.id)
    audit.add("owner_changed", reference=complaint.reference, reason=reason,
              moved_tasks=moved, **{"from": old_owner, "to": new_owner})
    register.sync_register(conn, ref, workflow, actor, audit)
    audit.write(conn)
    for task_id in moved:
        notifications.notify_task_assigned(conn, task_id, actor)
    return OwnerChange(complaint.reference, old_owner, new_owner, moved)


def _complaint(uow: UnitOfWork, key: str | int) -> Complaint:
    column = Complaint.instance_id if isinstance(key, int) else Complaint.reference
    complaint = uow.session.scalars(select(Complaint).where(column == key)).first()
    if complaint is None or complaint.instance_id is None:
        raise NotFound(f"there is no complaint {key}")
    return complaint


def _fresh_workflow(uow: UnitOfWork, ref: InstanceRef) -> BpmnWorkflow:
    """The stored workflow, loaded anew (a cached copy is dropped: it is changed)."""
    conn = uow.connection
    runtime.take_cached(ref.id, ref.lock_version)
    state = conn.scalar(select(ProcessInstance.state).where(ProcessInstance.id == ref.id))
    specs = runtime.specs_for(ref.sha256,
                              runtime.specs_json_for(conn, ref.definition_id, ref.sha256))
    return runtime.load_workflow(state, specs, runtime.LazyCalendar(lambda: load_calendar(conn)))


def _set_owner(workflow: BpmnWorkflow, new_owner: str) -> None:
    """The new owner in what later tasks inherit, and in the case data from now on."""
    for wf in (workflow, *workflow.subprocesses.values()):
        for task in wf.tasks.values():
            if not task.has_state(TaskState.FINISHED_MASK) and OWNER_KEY in task.data:
                task.data[OWNER_KEY] = new_owner
    # Spiff stamps Task.last_state_change with time.time(): the same clock orders this
    # change among the tasks' changes (engine.case_data).
    changes = list(workflow.data.get(CASE_CHANGES) or [])
    changes.append({"at": time.time(), "set": {OWNER_KEY: new_owner}})
    workflow.data[CASE_CHANGES] = changes


def _refresh_ready_rows(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                        old_owner: str | None, new_owner: str) -> list[str]:
    """Move the old owner's open Complaint Owner tasks (claims released) and re-render the
    instructions of every ready task (they may name the owner); the ids moved."""
    now = clock.now()
    ready = {str(t.id): t for t in runtime.ready_human_tasks(workflow)}
    rows = conn.execute(select(HumanTask.id, HumanTask.role, HumanTask.assignee)
                        .where(HumanTask.instance_id == ref.id, HumanTask.state == "ready")
                        .order_by(HumanTask.created_at, HumanTask.id)).all()
    moved = []
    for row in rows:
        task = ready.get(row.id)
        values = {}
        if task is not None:
            values["instructions"] = instances.task_projection(ref, task, now)["instructions"]
        if row.role == COMPLAINT_OWNER_ROLE and old_owner and row.assignee == old_owner:
            values.update(assignee=new_owner, claimed_by=None)
            moved.append(row.id)
        if values:
            conn.execute(update(HumanTask).where(HumanTask.id == row.id).values(**values))
    return moved
