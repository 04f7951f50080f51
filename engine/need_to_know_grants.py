"""Need-to-know grants named in the security assessment (policy 8.2).

The Information Security Officer's form ``assess_security_incident`` asks "Who else
needs to know?" (``need_to_know_users``, a list of usernames). Completing that task
grants each named user access to the case (engine/access_grants.py ``grant_access``:
audited, one active grant per user and case), by the ISO who completed it, in the
transaction of the step, through an after-step hook.

A name that cannot be granted (no such user, or the one completing the task may not
grant) does not stop the step: the step's ``need_to_know_named`` audit event lists it
under ``not_granted`` with the reason, beside ``granted`` and ``already`` (the users
who had an active grant). That event also marks the assessment as handled: a later
step of the case, or a revoked grant, never grants again from the same assessment.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task, TaskState
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from engine import register
from engine.access_grants import _active, grant_access
from engine.audit import Actor, AuditBatch
from engine.errors import EngineError
from engine.instances import InstanceRef, on_after_step
from engine.models import AuditEvent, Complaint
from engine.users import get_user

ASSESSMENT_TASK = "assess_security_incident"
NAMES_FIELD = "need_to_know_users"
REASON = "named by the Information Security Officer in the security assessment"
#: The audit event of a handled assessment (its ``task_id`` is the assessment task).
NAMED = "need_to_know_named"

#: Ids of the assessment tasks already handled, kept on the workflow object (which the
#: engine caches only after its transaction committed, like engine/register.py does).
_HANDLED = "_complaints_need_to_know_handled"


def _completed_assessments(workflow: BpmnWorkflow) -> list[Task]:
    return [
        task
        for wf in (workflow, *workflow.subprocesses.values())
        if ASSESSMENT_TASK in wf.spec.task_specs  # a dict look-up: most steps stop here
        for task in wf.tasks.values()
        if task.task_spec.name == ASSESSMENT_TASK and task.has_state(TaskState.COMPLETED)
    ]


def _names(task: Task) -> list[str]:
    raw = task.data.get(NAMES_FIELD)
    if not isinstance(raw, list):
        return []
    names: list[str] = []
    for name in raw:
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return names


def _handled_before(conn: Connection, instance_id: int, task_id: str) -> bool:
    return conn.scalar(select(AuditEvent.id).where(
        AuditEvent.instance_id == instance_id, AuditEvent.action == NAMED,
        AuditEvent.task_id == task_id).limit(1)) is not None


@on_after_step
def grant_named_users(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                      actor: Actor, audit: AuditBatch) -> None:
    """After the step that completes the security assessment: grant the named users."""
    if workflow.spec.name != register.COMPLAINT_PROCESS_ID:  # read late: import cycle
        return
    handled: set[str] | None = getattr(workflow, _HANDLED, None)
    known = set(handled or ())
    for task in _completed_assessments(workflow):
        task_id = str(task.id)
        if task_id in known:
            continue
        known.add(task_id)
        names = _names(task)
        # On a workflow loaded from the database (``handled`` is None) the assessment
        # may have been handled by an earlier step: its audit event says so.
        if not names or (handled is None and _handled_before(conn, ref.id, task_id)):
            continue
        _grant(conn, ref, names, actor, audit, task_id)
    setattr(workflow, _HANDLED, known)


def _grant(conn: Connection, ref: InstanceRef, names: list[str], actor: Actor,
           audit: AuditBatch, task_id: str) -> None:
    granted: list[str] = []
    already: list[str] = []
    not_granted: dict[str, str] = {}
    # A session joined to the step's transaction (the unit of work commits it).
    with Session(bind=conn) as session:
        complaint = session.scalars(
            select(Complaint).where(Complaint.instance_id == ref.id)).first()
        for name in names:
            if complaint is None:
                not_granted[name] = "the case has no register record"
            elif len(name) > 80 or get_user(session, name) is None:
                not_granted[name] = f"there is no user {name[:80]}"
            elif _active(session, complaint.id, name) is not None:
                already.append(name)
            else:
                try:
                    grant_access(session, complaint.reference, name, REASON, actor)
                except EngineError as exc:  # e.g. one who may not grant completed the task
                    not_granted[name] = str(exc)
                else:
                    granted.append(name)
        session.flush()
    details: dict[str, Any] = {"granted": granted, "already": already,
                               "not_granted": not_granted}
    if complaint is not None:
        details["reference"] = complaint.reference
    audit.add(NAMED, task_id=task_id, **details)
