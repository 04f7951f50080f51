"""Read-only queries for the web layer: plain SQL over the projection tables.

Nothing here deserializes a workflow. (These may move into the engine later.)
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, extract, func, literal, or_, select, text
from sqlalchemy.orm import Session

from engine import clock
from engine.db import get_engine
from engine.instances import RUNNING
from engine.models import Complaint, HumanTask, ProcessInstance

log = logging.getLogger(__name__)


def page_count(total: int, page_size: int) -> int:
    """How many pages of ``page_size`` rows ``total`` rows fill (at least one)."""
    return max(1, -(-total // page_size))


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

#: States the inbox filters on (web/inbox.py labels them).
INBOX_STATES = ("overdue", "due_soon", "unclaimed", "mine")


def _epoch_seconds(column, dialect: str):
    """A UTC timestamp column as seconds since 1970 (SQLite keeps naive UTC text)."""
    if dialect == "postgresql":
        return extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _inbox_state_clause(state: str, username: str, now: datetime, dialect: str,
                        due_soon_share: float):
    """The inbox ``state`` filter in SQL, so that counts and pages are right.

    Overdue and due soon must agree with web.inbox.time_state (the Python rule the rows
    are labelled with): overdue once the due time is reached; due soon before that,
    once ``due_soon_share`` of the time from creation to the due time has passed.
    """
    if state == "overdue":
        return HumanTask.due_at <= now
    if state == "due_soon":
        created = _epoch_seconds(HumanTask.created_at, dialect)
        due = _epoch_seconds(HumanTask.due_at, dialect)
        return and_(HumanTask.due_at > now, or_(
            HumanTask.due_at <= HumanTask.created_at,
            # 1 ms of slack: SQLite's julianday is a float of days, not exact seconds
            literal(now.timestamp()) - created
            >= literal(due_soon_share) * (due - created) - literal(0.001)))
    if state == "unclaimed":
        return HumanTask.claimed_by.is_(None)
    if state == "mine":
        return or_(HumanTask.claimed_by == username, HumanTask.assignee == username)
    return None


def inbox_tasks(
    session: Session,
    username: str,
    roles: Collection[str],
    *,
    q: str | None = None,
    sort: str = "due",
    state: str | None = None,
    now: datetime | None = None,
    due_soon_share: float = 0.8,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[tuple], int]:
    """One page of the inbox as rows of (task, complaint reference or None, process id),
    and the number of tasks matching in all.

    The same tasks as ``ready_tasks_for`` (assigned to ``username``, or unassigned of one
    of ``roles``), joined to their register row for the reference; ``q`` matches the
    reference or the title; ``state`` is one of INBOX_STATES (judged at ``now``);
    ``sort`` is one of INBOX_SORTS (due and created: oldest first, tasks without a due
    time last). ``limit``/``offset`` page through the result in SQL.
    """
    conditions = [
        HumanTask.state == "ready",
        ProcessInstance.status == RUNNING,
        or_(
            HumanTask.assignee == username,
            and_(HumanTask.assignee.is_(None), HumanTask.role.in_(sorted(roles))),
        ),
    ]
    if q and q.strip():
        term = q.strip()
        conditions.append(or_(
            Complaint.reference.icontains(term, autoescape=True),
            HumanTask.title.icontains(term, autoescape=True),
        ))
    if state:
        clause = _inbox_state_clause(state, username, now or clock.now(),
                                     session.get_bind().dialect.name, due_soon_share)
        if clause is not None:
            conditions.append(clause)

    def joined(query):
        return (query.join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
                .outerjoin(Complaint, Complaint.instance_id == HumanTask.instance_id)
                .where(*conditions))

    total = session.scalar(joined(select(func.count()).select_from(HumanTask))) or 0
    due_last = (HumanTask.due_at.is_(None), HumanTask.due_at)
    if sort == "created":
        order = (HumanTask.created_at, *due_last)
    elif sort == "title":
        order = (func.lower(HumanTask.title), *due_last)
    else:
        order = (*due_last, HumanTask.created_at)
    query = joined(select(HumanTask, Complaint.reference, ProcessInstance.process_id))
    query = query.order_by(*order, HumanTask.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [tuple(row) for row in session.execute(query)], total


def complaint_by_instance(session: Session, instance_id: int) -> Complaint | None:
    return session.scalars(select(Complaint).where(Complaint.instance_id == instance_id)).first()
