"""Read-only queries for the web layer: plain SQL over the projection tables.

Nothing here deserializes a workflow. (These may move into the engine later.)
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from engine.db import get_engine
from engine.instances import RUNNING
from engine.models import Complaint, HumanTask, ProcessInstance

log = logging.getLogger(__name__)


def database_answers(url: str | None = None) -> bool:
    """True when the database at ``url`` (default: the configured one) answers ``SELECT 1``.

    Any failure, even in creating the engine, counts as unavailable.
    """
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        log.warning("health check: the database does not answer", exc_info=True)
        return False
    return True


def ready_tasks_for(session: Session, username: str, roles: Collection[str]) -> list[HumanTask]:
    """The inbox: ready tasks of running instances that ``username`` may work on.

    Mirrors engine.permissions.may_work_on in SQL: a task assigned to a person is
    theirs; an unassigned one belongs to the holders of its role. Tasks of an instance
    that is not running (in error, suspended) are left out: they cannot be completed.
    """
    query = (
        select(HumanTask)
        .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
        .where(
            HumanTask.state == "ready",
            ProcessInstance.status == RUNNING,
            or_(
                HumanTask.assignee == username,
                and_(HumanTask.assignee.is_(None), HumanTask.role.in_(sorted(roles))),
            ),
        )
        .order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.created_at,
                  HumanTask.id)
    )
    return list(session.scalars(query))


def ready_tasks_of_instance(session: Session, instance_id: int) -> list[HumanTask]:
    query = (
        select(HumanTask)
        .where(HumanTask.instance_id == instance_id, HumanTask.state == "ready")
        .order_by(HumanTask.created_at, HumanTask.id)
    )
    return list(session.scalars(query))


def task_by_id(session: Session, task_id: str) -> HumanTask | None:
    if not task_id or len(task_id) > 36:
        return None
    return session.get(HumanTask, task_id)


def instance_by_id(session: Session, instance_id: int) -> ProcessInstance | None:
    return session.get(ProcessInstance, instance_id)


#: Orderings of the inbox: the first column, then stable tie-breakers.
INBOX_SORTS = ("due", "created", "title")


def inbox_tasks(
    session: Session,
    username: str,
    roles: Collection[str],
    *,
    q: str | None = None,
    sort: str = "due",
):
    """The inbox as rows of (task, complaint reference or None, process id).

    The same tasks as ``ready_tasks_for`` (assigned to ``username``, or unassigned of one
    of ``roles``), joined to their register row for the reference; ``q`` matches the
    reference or the title; ``sort`` is one of INBOX_SORTS (due and created: oldest
    first, tasks without a due time last).
    """
    query = (
        select(HumanTask, Complaint.reference, ProcessInstance.process_id)
        .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
        .outerjoin(Complaint, Complaint.instance_id == HumanTask.instance_id)
        .where(
            HumanTask.state == "ready",
            ProcessInstance.status == RUNNING,
            or_(
                HumanTask.assignee == username,
                and_(HumanTask.assignee.is_(None), HumanTask.role.in_(sorted(roles))),
            ),
        )
    )
    if q and q.strip():
        term = q.strip()
        query = query.where(or_(
            Complaint.reference.icontains(term, autoescape=True),
            HumanTask.title.icontains(term, autoescape=True),
        ))
    due_last = (HumanTask.due_at.is_(None), HumanTask.due_at)
    if sort == "created":
        order = (HumanTask.created_at, *due_last)
    elif sort == "title":
        order = (func.lower(HumanTask.title), *due_last)
    else:
        order = (*due_last, HumanTask.created_at)
    query = query.order_by(*order, HumanTask.id)
    return [tuple(row) for row in session.execute(query)]


def complaint_by_instance(session: Session, instance_id: int) -> Complaint | None:
    return session.scalars(select(Complaint).where(Complaint.instance_id == instance_id)).first()
