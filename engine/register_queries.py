"""Read queries of the Complaints Register for the staff pages (issue 4).

The register page, its CSV export and the case page read through here. The filters
(status, classification, channel, owner, ``q``, received date range in the company's
time zone, overdue) are plain WHERE clauses over ``complaints``, so that one query gives
a page, its count and the whole export alike, with the need-to-know rule
(engine.permissions) applied in SQL: a complaint the reader may not see is in none of
them.

Note: web/queries.register_page (the JSON API's ``GET /complaints``) applies the same
status/classification/channel/q filters; this module is a superset of it and the API
could move onto it.

Overdue is decided in SQL (so that paging and counts stay right on a big register): a
case that is not closed, with any deadline in ``deadlines`` that has passed and is not
met (met: ``log_by`` and ``logged_at``, ``acknowledge_by`` and ``acknowledged_at``,
``resolve_by`` and ``resolved_at``). ``deadlines`` is a JSON object; its entries are
walked with ``json_each`` (SQLite) or ``json_each_text`` (PostgreSQL) and compared as
instants (``julianday`` / ``timestamptz``), not as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session

from engine import clock, deadlines, settings
from engine.audit import Actor
from engine.calendar import iso
from engine.models import AuditEvent, Complaint, ComplaintDeadline, HumanTask
from engine.permissions import personal_data_visible, visible_complaints

#: Register pages show this many complaints.
PAGE_SIZE = 25

#: Deadlines met by a fact of the register: the deadline's name and the fact's column.
MET_BY = {"log_by": "logged_at", "acknowledge_by": "acknowledged_at",
          "resolve_by": "resolved_at"}



@dataclass(frozen=True)
class RegisterFilter:
    status: str | None = None
    classification: str | None = None
    channel: str | None = None
    owner: str | None = None
    q: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    overdue: bool = False


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.load().timezone)


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=_zone())


def _overdue_clause(dialect: str, now: datetime) -> ColumnElement[bool]:
    met = " OR ".join(f"(d.key = '{name}' AND complaints.{column} IS NOT NULL)"
                      for name, column in MET_BY.items())
    if dialect == "postgresql":
        source = "json_each_text(complaints.deadlines) AS d(key, value)"
        passed = "CAST(d.value AS timestamptz) < CAST(:overdue_now AS timestamptz)"
    else:
        source = "json_each(complaints.deadlines) AS d"
        passed = "julianday(d.value) < julianday(:overdue_now)"
    clause = text(f"EXISTS (SELECT 1 FROM {source} WHERE {passed} AND NOT ({met}))")
    return and_(
        Complaint.status != "closed",
        Complaint.closed_at.is_(None),
        clause.bindparams(overdue_now=iso(now)),
    )


def register_conditions(session: Session, actor: Actor, where: RegisterFilter,
                        withholding_personal_data: bool = True) -> list[ColumnElement[bool]]:
    """The WHERE clauses of the register as ``actor`` may see it, filtered.

    ``withholding_personal_data``: a reader that withholds the personal data of
    need-to-know cases from those who may not see it (the pages, the export and the API
    do) shows auditors those cases; False leaves the cases out for them.
    """
    conditions: list[ColumnElement[bool]] = [
        visible_complaints(actor, withholding_personal_data=withholding_personal_data)]
    for column, value in ((Complaint.status, where.status),
                          (Complaint.classification, where.classification),
                          (Complaint.channel, where.channel),
                          (Complaint.owner, where.owner)):
        if value:
            conditions.append(column == value)
    if where.q and where.q.strip():
        term = where.q.strip()
        conditions.append(or_(
            Complaint.reference.icontains(term, autoescape=True),
            Complaint.summary.icontains(term, autoescape=True),
            # A reader without the personal data of a complaint cannot find it by name.
            and_(Complaint.complainant_name.icontains(term, autoescape=True),
                 personal_data_visible(actor)),
        ))
    if where.received_from:
        conditions.append(Complaint.received_at >= _start_of_day(where.received_from))
    if where.received_to:
        conditions.append(
            Complaint.received_at < _start_of_day(where.received_to + timedelta(days=1)))
    if where.overdue:
        conditions.append(_overdue_clause(session.get_bind().dialect.name, clock.now()))
    return conditions


_NEWEST_FIRST = (Complaint.received_at.desc(), Complaint.id.desc())


def register_page(session: Session, actor: Actor, where: RegisterFilter, page: int = 1,
                  per_page: int = PAGE_SIZE, withholding_personal_data: bool = True,
                  ) -> tuple[list[Complaint], int]:
    """One page of the register (newest receipt first) and the number matching in all."""
    conditions = register_conditions(session, actor, where, withholding_personal_data)
    total = session.scalar(select(func.count()).select_from(Complaint).where(*conditions)) or 0
    rows = session.scalars(select(Complaint).where(*conditions).order_by(*_NEWEST_FIRST)
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def register_rows(session: Session, actor: Actor, where: RegisterFilter,
                  batch: int = 500) -> Iterator[Complaint]:
    """Every complaint matching (the export), newest receipt first, fetched in batches."""
    query = (select(Complaint).where(*register_conditions(session, actor, where))
             .order_by(*_NEWEST_FIRST).execution_options(yield_per=batch))
    yield from session.scalars(query)


def owners(session: Session, actor: Actor) -> list[str]:
    """The owners named in the register ``actor`` sees (for the owner filter)."""
    query = (select(Complaint.owner).distinct()
             .where(Complaint.owner.is_not(None), visible_complaints(
                 actor, withholding_personal_data=True))
             .order_by(Complaint.owner))
    return list(session.scalars(query))


# -- one case -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadlineState:
    name: str
    due: datetime
    state: str  # the words: "on time", "due soon", "overdue", "met", "met late"
    met_at: datetime | None = None
    #: When the miss was recorded (the deadline passed unmet), from the deadline record.
    missed_at: datetime | None = None
    code: str = deadlines.ON_TIME  # engine.deadlines state: on_time, due_soon, ...

    @property
    def label(self) -> str:
        return deadlines.label(self.name)


def deadline_states(complaint: Complaint, now: datetime | None = None,
                    records: list[ComplaintDeadline] | None = None) -> list[DeadlineState]:
    """Each deadline of the case with its state (engine.deadlines.deadline_state), earliest
    first.

    ``records`` are the case's ``complaint_deadlines`` rows: they give when each deadline
    was met or missed and when it was computed (the start of its "due soon" window).
    Without a record (or with ``records`` None) ``log_by``, ``acknowledge_by`` and
    ``resolve_by`` are met by their register fact (``logged_at``, ...) and the window
    starts at receipt. For a closed case, unmet deadlines are judged at closing.
    """
    now = now or clock.now()
    by_name = {r.name: r for r in records or ()}
    out = []
    for name, value in (complaint.deadlines or {}).items():
        try:
            due = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            continue
        if due.tzinfo is None:
            continue
        record = by_name.get(name)
        if record is not None and record.due_at == due:
            start, met_at, missed_at = record.computed_at, record.met_at, record.missed_at
        else:
            fact = MET_BY.get(name)
            start, missed_at = complaint.received_at, None
            met_at = getattr(complaint, fact) if fact else None
        at = now
        if met_at is None and complaint.closed_at is not None:
            at = min(now, complaint.closed_at)
        code = deadlines.deadline_state(start, due, met_at, at)
        if code == deadlines.DUE_SOON and complaint.closed_at is not None:
            code = deadlines.ON_TIME
        out.append(DeadlineState(name, due, deadlines.STATE_WORDS[code], met_at, missed_at,
                                 code))
    return sorted(out, key=lambda d: (d.due, d.name))


def deadline_records(session: Session, complaint_id: int) -> list[ComplaintDeadline]:
    """The case's deadline records (met and missed, with the actual times)."""
    return list(session.scalars(select(ComplaintDeadline)
                                .where(ComplaintDeadline.complaint_id == complaint_id)
                                .order_by(ComplaintDeadline.due_at, ComplaintDeadline.name)))


def task_state(task: HumanTask, now: datetime | None = None) -> str | None:
    """The words for an open task's due state (the same rule), or None without a due time."""
    if task.due_at is None:
        return None
    code = deadlines.deadline_state(task.created_at, task.due_at, None, now or clock.now())
    return deadlines.STATE_WORDS[code]


def open_tasks(session: Session, instance_id: int) -> list[HumanTask]:
    query = (select(HumanTask)
             .where(HumanTask.instance_id == instance_id, HumanTask.state == "ready")
             .order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.created_at,
                       HumanTask.id))
    return list(session.scalars(query))


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str | None
    action: str
    text: str


def timeline(session: Session, instance_id: int) -> list[TimelineEntry]:
    """What happened to the case, from the audit trail, in plain words, in order.

    The words never carry task form data (which may be personal data).
    """
    titles = {task_id: title for task_id, title in session.execute(
        select(HumanTask.id, HumanTask.title).where(HumanTask.instance_id == instance_id))}
    events = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                             .order_by(AuditEvent.at, AuditEvent.id))
    return [TimelineEntry(e.at, e.actor, e.action, describe_event(e, titles)) for e in events]


_VIA = {"record": "the API", "register": "the API register", "register_page": "the register",
        "case_page": "the case page", "register_csv": "a register export",
        "task": "a task page", "document": "a document download"}


def describe_event(event: AuditEvent, titles: dict[str, str]) -> str:
    details: dict[str, Any] = event.details or {}
    title = details.get("title") or titles.get(event.task_id or "") \
        or details.get("bpmn_id") or "a task"
    action = event.action
    if action == "complaint_recorded":
        channel = str(details.get("channel", "")).replace("_", " ")
        return f"Recorded the complaint (received by {channel})" if channel \
            else "Recorded the complaint"
    if action == "instance_started":
        version = details.get("version")
        return ("Started the complaint-handling process"
                + (f" (version {version})" if version else ""))
    if action == "task_ready":
        return f"“{title}” became ready"
    if action == "task_completed":
        return f"Completed “{title}”"
    if action == "task_claimed":
        return f"Took “{title}”"
    if action == "task_released":
        return f"Released “{title}”"
    if action == "timers_checked":
        return "Checked the timers"
    if action == "instance_completed":
        return "The process finished"
    if action == "instance_error":
        return "The process stopped with an error"
    if action in ("deadline_met", "deadline_missed"):
        return _describe_deadline_event(action, details)
    if action == "need_to_know_named":
        granted = ", ".join(details.get("granted") or []) or "nobody new"
        refused = "".join(f"; not granted: {name} ({why})"
                          for name, why in (details.get("not_granted") or {}).items())
        return f"Access given to the users named in the security assessment: {granted}{refused}"
    if action == "register_field_ignored":
        return f"Ignored a value of the wrong kind for “{details.get('field', '?')}”"
    if action == "document_added":  # the name is left out: it may be personal data
        return f"Added a document ({details.get('content_type', '?')})"
    if action == "access_granted":
        return f"Granted {details.get('username', '?')} access to the case"
    if action == "access_revoked":
        return f"Revoked the access of {details.get('username', '?')} to the case"
    if action == "owner_changed":  # the reason stays in the audit trail (it is free text)
        return (f"Changed the Complaint Owner from {details.get('from') or 'nobody'} "
                f"to {details.get('to', '?')}")
    if action == "complaint_read":
        return f"Read the record (via {_VIA.get(details.get('via', ''), details.get('via'))})"
    return action.replace("_", " ").capitalize()


def _describe_deadline_event(action: str, details: dict[str, Any]) -> str:
    name = str(details.get("deadline", "?"))
    try:
        due = deadlines.local_text(datetime.fromisoformat(details["due_at"]))
    except (KeyError, TypeError, ValueError):
        due = "?"
    if action == "deadline_missed":
        return f"Missed the deadline “{deadlines.label(name)}” (due {due})"
    late = " late" if details.get("late") else ""
    return f"Met the deadline “{deadlines.label(name)}”{late} (due {due})"


def complaint_by_reference(session: Session, reference: str) -> Complaint | None:
    if not reference or len(reference) > 20:
        return None
    return session.scalars(
        select(Complaint).where(Complaint.reference == reference.upper())).first()

