"""Which mail the system sends, and when; queued in the outbox (engine/outbox.py).

* **The acknowledgement** to the complainant, when a complaint with an e-mail address
  is recorded: in the step that records it (the first step of its process), so the
  mail exists exactly when the complaint does. The policy asks for it within 3
  working days "confirming receipt and outlining the next steps"; sending it on
  receipt is the earliest moment the reference exists and needs nobody. It holds the
  reference, the next steps, the timescale and the escalation route, and of the
  complainant's personal data only the name (never the description or summary):
  complaint communications must not carry sensitive information over e-mail. The
  Staff task "Send the acknowledgement" stays in the process for complaints without
  an e-mail address and for a follow-up by another channel.
* **"A task for you"** to a staff member when a task is assigned to them by name (the
  Complaint Owner's tasks), in the step that creates the task.
* **"A task for your role"** to each active holder (with an e-mail address) of the
  roles in ``OFFERED_TASK_ROLES`` when a task is offered to that role, in the step
  that creates it: the Operations Director hears of every new complaint (policy 5.1),
  the Quality Manager and Senior Management of every escalation (10.1), the
  Information Security Officer of every security assessment (8.2), process owners of
  a definition review. Tasks offered to all staff send nothing: that would be a storm.
  The user whose step created the task is not mailed about it.
* **One digest per user and day** (``queue_due_digests``, run by the worker) listing
  their tasks that are overdue or due soon: assigned to them, claimed by them, or
  waiting unclaimed for a role of ``OFFERED_TASK_ROLES`` they hold.

Staff mails name the task, the reference and the due time, never case details.
Each message has a ``dedupe_key``, so a retried step or a second worker never queues
it twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import Connection, Engine, bindparam, or_, select

from engine import clock, deadlines, mail, outbox, register, settings
from engine.audit import SYSTEM, Actor, AuditBatch
from engine.db import unit_of_work
from engine.errors import InvalidData
from engine.instances import InstanceRef, on_after_step
from engine.models import Complaint, HumanTask, OutboxMessage, User, UserRole
from engine.prepared import Prepared
from engine.roles import role_label

#: Digests are queued from this hour (company time) on, once per user and day.
DIGEST_HOUR = 7


@on_after_step
def queue_step_mail(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                    actor: Actor, audit: AuditBatch) -> None:
    """After every step, in its transaction: the mail that step causes."""
    _acknowledge_new_complaint(conn, ref, workflow, audit)
    _tell_assignees(conn, ref, workflow, audit)
    _tell_role_holders(conn, ref, workflow, actor, audit)


# -- the acknowledgement -----------------------------------------------------------------------

def acknowledgement_values(reference: str, complainant_name: str,
                           received_at: datetime) -> dict[str, Any]:
    """Everything the acknowledgement template may use: nothing sensitive."""
    return {"reference": reference, "complainant_name": complainant_name,
            "received_on": mail.local_day(received_at)}


def _being_recorded(ref: InstanceRef, workflow: BpmnWorkflow) -> dict[str, Any] | None:
    """The register row of the complaint this step records, or None.

    Read from what engine.register is recording (it sets the row's ``instance_id``
    in its own after-step hook, which may run before or after this one).
    """
    recording = register._recording.get()
    if recording is None or workflow.spec.name != register.COMPLAINT_PROCESS_ID:
        return None
    return recording if recording.get("instance_id") in (None, ref.id) else None


def _acknowledge_new_complaint(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                               audit: AuditBatch) -> None:
    recording = _being_recorded(ref, workflow)
    if recording is None:
        return  # not the step that records a complaint
    address = recording.get("complainant_email")
    if not address:
        return
    message = mail.render("acknowledgement", acknowledgement_values(
        recording["reference"], recording["complainant_name"], recording["received_at"]),
        conn=conn)
    _queue(conn, audit, message, kind="acknowledgement", to_address=address,
           instance_id=ref.id, dedupe_key=f"acknowledgement:{recording['reference']}")


def _queue(conn: Connection, audit: AuditBatch, message: mail.Mail, **fields: Any) -> bool:
    if message.problem:
        audit.add("mail_template_failed", kind=fields["kind"], problem=message.problem)
    try:
        queued = outbox.queue(conn, subject=message.subject, body=message.body, **fields)
    except InvalidData as exc:  # an address the intake let through but SMTP would not take
        audit.add("mail_not_queued", kind=fields["kind"], reason=exc.message)
        return False
    if queued is not None:
        audit.add("mail_queued", kind=fields["kind"], outbox_id=queued.id,
                  message_id=queued.message_id, recipient=fields.get("recipient"))
    return queued is not None


# -- "a task for you" --------------------------------------------------------------------------

def _tell_assignees(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                    audit: AuditBatch) -> None:
    """Mail the users the step's new tasks are assigned to (as the projection says)."""
    if not ref.newly_assigned:  # the usual case: no SQL
        return
    recording = _being_recorded(ref, workflow)
    _queue_assignment_mail(conn, audit, set(ref.newly_assigned),
                           recording["reference"] if recording else None)


#: Roles whose holders are mailed when a task is offered to the role: few people each,
#: who should not have to watch their inbox (not "staff": every logging task would mail
#: every member of staff; Complaint Owner tasks are assigned by name).
OFFERED_TASK_ROLES = frozenset({"operations_director", "quality_manager",
                                "senior_management", "information_security_officer",
                                "process_owner"})

_ROLE_HOLDERS = Prepared(
    select(User.username, User.email)
    .join(UserRole, UserRole.user_id == User.id)
    .where(UserRole.role == bindparam("role"), User.active.is_(True), User.email.is_not(None))
    .order_by(User.username)
)
def _role_holders(conn: Connection, role: str) -> list[tuple[str, str]]:
    """(username, e-mail address) of the active holders of ``role`` who have an address."""
    return _ROLE_HOLDERS.all(conn, {"role": role})


_OFFERED_TASK = Prepared(
    select(HumanTask.title, HumanTask.due_at, HumanTask.instance_id, Complaint.reference)
    .outerjoin(Complaint, Complaint.instance_id == HumanTask.instance_id)
    .where(HumanTask.id == bindparam("task_id"), HumanTask.state == "ready")
)


def _tell_role_holders(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                       actor: Actor, audit: AuditBatch) -> None:
    """Mail the holders of a role the step's new task was offered to (OFFERED_TASK_ROLES)."""
    offered = [(task_id, role) for task_id, role in ref.newly_offered
               if role in OFFERED_TASK_ROLES]
    if not offered:  # the usual case: no SQL
        return
    recording = _being_recorded(ref, workflow)
    for task_id, role in offered:
        task = _OFFERED_TASK.first(conn, {"task_id": task_id})
        if task is None:
            continue
        title, due_at, instance_id, reference = task
        reference = reference or (recording["reference"] if recording else None)
        for username, email in _role_holders(conn, role):
            if actor is not None and username == actor.username:
                continue  # they made the step and see the task in its answer
            message = mail.render("task_offered", {
                "username": username, "task_title": title, "role": role_label(role),
                "reference": reference, "due_at": mail.local_time(due_at)}, conn=conn)
            _queue(conn, audit, message, kind="task_offered", to_address=email,
                   recipient=username, instance_id=instance_id,
                   dedupe_key=f"task_offered:{task_id}:{username}")


def notify_task_assigned(conn: Connection, task_id: str, actor: Actor) -> bool:
    """Tell the user a ready task is now assigned to (e.g. after an admin reassigned it),
    in the caller's transaction; False if nothing was queued (no assignee, no e-mail
    address, or this user was told about this task already)."""
    instance_id = conn.scalar(select(HumanTask.instance_id).where(HumanTask.id == task_id))
    audit = AuditBatch(actor, instance_id)
    queued = _queue_assignment_mail(conn, audit, {task_id})
    audit.write(conn)
    return queued > 0


class _AssignedTask(NamedTuple):
    id: str
    instance_id: int
    title: str
    assignee: str
    due_at: datetime | None
    email: str | None
    active: bool
    reference: str | None


# Prepared once (engine/prepared.py): it runs after every step that readies a task
# assigned to a named user, once per such task (a step readies one or two).
_ASSIGNED_TASK = Prepared(
    select(HumanTask.id, HumanTask.instance_id, HumanTask.title, HumanTask.assignee,
           HumanTask.due_at, User.email, User.active, Complaint.reference)
    .join(User, User.username == HumanTask.assignee)
    .outerjoin(Complaint, Complaint.instance_id == HumanTask.instance_id)
    .where(HumanTask.id == bindparam("task_id"), HumanTask.state == "ready")
)


def _queue_assignment_mail(conn: Connection, audit: AuditBatch, task_ids: set[str],
                           reference: str | None = None) -> int:
    rows = [_AssignedTask(*row) for task_id in sorted(task_ids)
            for row in _ASSIGNED_TASK.all(conn, {"task_id": task_id})]
    queued = 0
    for row in rows:
        if not (row.email and row.active):
            continue
        message = mail.render("task_assigned", {
            "username": row.assignee, "task_title": row.title,
            "reference": row.reference or reference, "due_at": mail.local_time(row.due_at)},
            conn=conn)
        queued += _queue(conn, audit, message, kind="task_assigned", to_address=row.email,
                         recipient=row.assignee, instance_id=row.instance_id,
                         dedupe_key=f"task_assigned:{row.id}:{row.assignee}")
    return queued


# -- the daily digest ------------------------------------------------------------------------

def time_state(due_at: datetime, created_at: datetime, now: datetime) -> str | None:
    """``overdue``, ``due_soon`` or None: the one deadline rule (engine/deadlines.py)."""
    state = deadlines.deadline_state(created_at, due_at, None, now)
    return state if state in (deadlines.OVERDUE, deadlines.DUE_SOON) else None


def digest_key(username: str, day: str) -> str:
    return f"task_digest:{username}:{day}"


def _due_tasks_by_user(conn: Connection, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Each user's overdue and due-soon tasks: assigned to them, claimed by them, or
    waiting unclaimed for a role of OFFERED_TASK_ROLES they hold (``role`` says which)."""
    rows = conn.execute(
        select(HumanTask.id, HumanTask.title, HumanTask.assignee, HumanTask.claimed_by,
               HumanTask.role, HumanTask.due_at, HumanTask.created_at, Complaint.reference)
        .outerjoin(Complaint, Complaint.instance_id == HumanTask.instance_id)
        .where(HumanTask.state == "ready", HumanTask.due_at.is_not(None),
               or_(HumanTask.assignee.is_not(None), HumanTask.claimed_by.is_not(None),
                   HumanTask.role.in_(sorted(OFFERED_TASK_ROLES))))
        .order_by(HumanTask.due_at, HumanTask.id)).all()
    holders: dict[str, list[str]] = {}  # role -> usernames, read when first needed
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        state = time_state(row.due_at, row.created_at, now)
        if not state:
            continue
        task = {"id": row.id, "title": row.title, "reference": row.reference,
                "due_at": mail.local_time(row.due_at), "state": state, "role": None}
        if row.assignee or row.claimed_by:
            tasks[row.assignee or row.claimed_by].append(task)
            continue
        if row.role not in holders:
            holders[row.role] = [username for username, _ in _role_holders(conn, row.role)]
        for username in holders[row.role]:
            tasks[username].append({**task, "role": role_label(row.role)})
    return tasks


def queue_due_digests(engine: Engine, now: datetime | None = None) -> int:
    """Queue today's digest for every user with overdue or due-soon tasks who has not had
    one today; return how many were queued.

    Cheap when there is nothing to do (one read); writes only when a digest is due.
    """
    now = now or clock.now()
    local = now.astimezone(ZoneInfo(settings.load().timezone))
    if local.hour < DIGEST_HOUR:
        return 0
    day = local.date().isoformat()
    with unit_of_work(engine, write=False) as uow:
        tasks = _due_tasks_by_user(uow.connection, now)
        if not tasks:
            return 0
        done = set(uow.connection.scalars(select(OutboxMessage.dedupe_key).where(
            OutboxMessage.dedupe_key.in_([digest_key(u, day) for u in tasks]))))
        tasks = {u: t for u, t in tasks.items() if digest_key(u, day) not in done}
    if not tasks:
        return 0
    queued = 0
    with unit_of_work(engine) as uow:
        conn = uow.connection
        users = conn.execute(select(User.username, User.email).where(
            User.username.in_(sorted(tasks)), User.active.is_(True),
            User.email.is_not(None))).all()
        audit = AuditBatch(SYSTEM)
        for user in users:
            if not user.email:
                continue
            mine = tasks[user.username]
            message = mail.render("task_digest", {
                "username": user.username,
                "overdue": [t for t in mine if t["state"] == "overdue"],
                "due_soon": [t for t in mine if t["state"] == "due_soon"]}, conn=conn)
            queued += _queue(conn, audit, message, kind="task_digest", to_address=user.email,
                             recipient=user.username,
                             dedupe_key=digest_key(user.username, day))
        audit.write(conn)
    return queued
