"""The annual review of a process definition, run as the ``definition_review`` process.

``start_review`` starts one ``definition_review`` instance for a process, with the
process, the version under review, its owner and the last year's figures in its data
(the process owner's task shows them), and a ``definition_reviews`` row that follows
it. The review opens at once: the process's "Review starts" timer is given a time
already passed (``review_lead_days``) and fired in the same transaction.

The decisions are observed by an after-step hook, in the transaction of the step that
took them (engine/instances.py):

* the Quality Manager sends the review back: the row records ``sent_back``, who, when,
  the comments and the round; the review stays due and goes back to the owner;
* the review is approved (by the Quality Manager, or by Senior Management after too
  many rounds): the row records ``approved``, the approver (the signed-in user, and the
  name typed on the approval), the date, the version approved (the current version
  then) and the next review date, one review interval later; the process's governance
  row gets the approval and the new due date;
* Senior Management rejects it: the row records ``rejected``; the review stays due.

The figures are those of the twelve whole months before the month the review starts,
in the company's time zone. For ``complaint_handling`` and the processes it calls
(their diagrams are part of its current version) they come from the Complaints
Register: complaints received per month, by classification, and how many missed their
logging, acknowledgement or any deadline (engine.register_queries.deadline_states).
For other processes they are instance counts: started, completed, in error, running.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from engine import clock, settings
from engine import register as _register  # a module: it may still be loading (cycle)
from engine.audit import SYSTEM, Actor, AuditBatch, record
from engine.calendar import calendar_from_settings, iso, parse_instant
from engine.case_data import case_data
from engine.db import UnitOfWork, unit_of_work
from engine.errors import Conflict, Forbidden, NotFound
from engine.governance import (
    DUE_SOON_DAYS,
    due_after,
    ensure_governance,
    first_deployed_at,
    today,
)
from engine.instances import (
    COMPLETE,
    RUNNING,
    InstanceRef,
    fire_due_timers,
    on_after_step,
    start_instance,
)
from engine.models import (
    AuditEvent,
    Complaint,
    DefinitionReview,
    ProcessDefinition,
    ProcessGovernance,
    ProcessInstance,
)
from engine.permissions import may_start_review
from engine.register_queries import deadline_states

REVIEW_PROCESS_ID = "definition_review"

APPROVED = "approved"
SENT_BACK = "sent_back"
REJECTED = "rejected"
#: Outcomes after which a review is over.
FINAL = frozenset({APPROVED, REJECTED})
#: Instance statuses in which a review can still go on.
LIVE_STATUSES = ("running", "error", "suspended")


# -- the last year's figures ---------------------------------------------------------------

def _zone() -> ZoneInfo:
    return ZoneInfo(settings.load().timezone)


def _months_before(now: datetime, count: int = 12) -> list[tuple[int, int]]:
    """The ``count`` whole months before the month of ``now`` (local), oldest first."""
    local = now.astimezone(_zone())
    index = local.year * 12 + local.month - 1
    return [divmod(i, 12) for i in range(index - count, index)]


def _month_start(year: int, month0: int) -> datetime:
    return datetime.combine(date(year, month0 + 1, 1), time(0), tzinfo=_zone())


def _label(year: int, month0: int) -> str:
    return f"{year:04d}-{month0 + 1:02d}"


def _bpmn_files(sources: dict[str, str]) -> set[str]:
    return {name for name in sources if name.lower().endswith(".bpmn")}


def _is_complaint_process(session: Session, process_id: str) -> bool:
    """complaint_handling, or a process whose diagrams are all part of its current version."""
    if process_id == _register.COMPLAINT_PROCESS_ID:
        return True
    current = {}
    for pid in (process_id, _register.COMPLAINT_PROCESS_ID):
        current[pid] = session.scalars(
            select(ProcessDefinition.sources).where(ProcessDefinition.process_id == pid)
            .order_by(ProcessDefinition.version.desc()).limit(1)).first()
    own, main = current[process_id], current[_register.COMPLAINT_PROCESS_ID]
    if not own or not main:
        return False
    files = _bpmn_files(own)
    return bool(files) and files <= _bpmn_files(main)


def last_year_figures(session: Session, process_id: str, now: datetime | None = None,
                      ) -> dict[str, Any]:
    """The figures a review looks at (see the module's docstring), JSON-ready.

    ``months`` holds one dict per month, ``totals`` the sums, ``lines`` the same as
    text lines for the owner's task.
    """
    now = now or clock.now()
    months = _months_before(now)
    start = _month_start(*months[0])
    end_index = months[-1][0] * 12 + months[-1][1] + 1
    end = _month_start(*divmod(end_index, 12))
    period = f"{_label(*months[0])} to {_label(*months[-1])}"
    zone = _zone()
    if _is_complaint_process(session, process_id):
        keys = ("received", "minor", "major", "unclassified", "logged_late",
                "acknowledged_late", "missed_any_deadline")
        counts = {_label(*m): dict.fromkeys(keys, 0) for m in months}
        rows = session.scalars(select(Complaint).where(Complaint.received_at >= start,
                                                       Complaint.received_at < end))
        for complaint in rows:
            local = complaint.received_at.astimezone(zone)
            month = counts.get(f"{local.year:04d}-{local.month:02d}")
            if month is None:
                continue
            month["received"] += 1
            month[complaint.classification if complaint.classification in ("minor", "major")
                  else "unclassified"] += 1
            late = {d.name for d in deadline_states(complaint, now)
                    if d.state in ("overdue", "met late")}
            month["logged_late"] += "log_by" in late
            month["acknowledged_late"] += "acknowledge_by" in late
            month["missed_any_deadline"] += bool(late)
        kind = "complaints"

        def line(label: str, m: dict[str, int]) -> str:
            return (f"{label}: {m['received']} received (minor {m['minor']}, major "
                    f"{m['major']}, unclassified {m['unclassified']}); logged late "
                    f"{m['logged_late']}, acknowledged late {m['acknowledged_late']}, "
                    f"a deadline missed {m['missed_any_deadline']}")
    else:
        keys = ("started", "completed", "in_error", "running")
        counts = {_label(*m): dict.fromkeys(keys, 0) for m in months}
        rows = session.execute(
            select(ProcessInstance.created_at, ProcessInstance.status)
            .where(ProcessInstance.process_id == process_id,
                   ProcessInstance.created_at >= start, ProcessInstance.created_at < end))
        for created_at, status in rows:
            local = created_at.astimezone(zone)
            month = counts.get(f"{local.year:04d}-{local.month:02d}")
            if month is None:
                continue
            month["started"] += 1
            month["completed"] += status == COMPLETE
            month["in_error"] += status == "error"
            month["running"] += status == RUNNING
        kind = "instances"

        def line(label: str, m: dict[str, int]) -> str:
            return (f"{label}: {m['started']} started; now {m['completed']} completed, "
                    f"{m['running']} running, {m['in_error']} in error")
    month_list = [{"month": label, **values} for label, values in counts.items()]
    totals = {key: sum(m[key] for m in month_list) for key in keys}
    lines = [line(m["month"], m) for m in month_list] + [line("Total", totals)]
    return {"kind": kind, "period": period, "months": month_list, "totals": totals,
            "lines": lines}


# -- starting a review ---------------------------------------------------------------------

def open_review(session: Session, process_id: str) -> DefinitionReview | None:
    """The review of ``process_id`` still going on, if any."""
    return session.scalars(
        select(DefinitionReview)
        .join(ProcessInstance, ProcessInstance.id == DefinitionReview.instance_id)
        .where(DefinitionReview.process_id == process_id,
               ProcessInstance.status.in_(LIVE_STATUSES),
               DefinitionReview.outcome.is_(None) | DefinitionReview.outcome.not_in(FINAL))
        .order_by(DefinitionReview.id.desc()).limit(1)).first()


def _current(session: Session, process_id: str) -> ProcessDefinition:
    definition = session.scalars(
        select(ProcessDefinition).where(ProcessDefinition.process_id == process_id)
        .order_by(ProcessDefinition.version.desc()).limit(1)).first()
    if definition is None:
        raise NotFound(f"no process {process_id!r} is deployed")
    return definition


def start_review(uow: UnitOfWork, process_id: str, actor: Actor) -> DefinitionReview:
    """Start the review of ``process_id``'s current version; the owner's task opens now."""
    if not may_start_review(actor):
        raise Forbidden("only a process owner or the Quality Manager may start a review")
    session = uow.session
    definition = _current(session, process_id)
    if session.scalar(select(ProcessDefinition.id)
                      .where(ProcessDefinition.process_id == REVIEW_PROCESS_ID)
                      .limit(1)) is None:
        raise Conflict(f"the review process {REVIEW_PROCESS_ID} is not deployed: deploy "
                       "processes/ first")
    governance = ensure_governance(session, process_id)
    # Two reviews of one process must not start together: lock its governance row
    # (PostgreSQL; SQLite writers already queue on the database lock).
    session.refresh(governance, with_for_update=True)
    running = open_review(session, process_id)
    if running is not None:
        raise Conflict(f"a review of {process_id} is already under way (started by "
                       f"{running.started_by} on {running.started_at:%Y-%m-%d})")
    now = clock.now()
    baseline = governance.last_approved_at or first_deployed_at(session, process_id)
    interval = governance.review_interval_months
    review_due = calendar_from_settings().add_months(baseline, interval)
    days_left = (review_due - now).total_seconds() / 86400
    # The process waits until review_lead_days before the due date: make that the past.
    lead_days = max(DUE_SOON_DAYS, math.ceil(days_left) + 1)
    data = {
        "process_id": process_id,
        "process_name": definition.name,
        "version_under_review": f"{process_id} v{definition.version}",
        "definition_owner": governance.owner,
        "last_approved_at": iso(baseline),
        "never_approved": governance.last_approved_at is None,
        "review_interval_months": interval,
        "review_lead_days": lead_days,
        "figures": last_year_figures(session, process_id, now),
    }
    session.flush()
    ref = start_instance(uow, REVIEW_PROCESS_ID, data, actor)
    if ref.status == RUNNING and ref.next_due_at is not None and ref.next_due_at <= now:
        fire_due_timers(uow, ref.id, actor)
    review = DefinitionReview(
        process_id=process_id, definition_id=definition.id, instance_id=ref.id,
        started_by=actor.username, started_at=now, rounds=0, figures=data["figures"])
    session.add(review)
    session.flush()
    record(session, actor, "definition_review_started", instance_id=ref.id,
           details={"process_id": process_id, "version": definition.version,
                    "review_id": review.id})
    return review


# -- the schedule -------------------------------------------------------------------------

log = logging.getLogger(__name__)


def reviews_falling_due(session: Session, on: date) -> list[str]:
    """The processes whose review is due (within DUE_SOON_DAYS of its date) or overdue
    on ``on`` and not under way: the ones the worker starts (none while the review
    process itself is not deployed)."""
    if session.scalar(select(ProcessDefinition.id)
                      .where(ProcessDefinition.process_id == REVIEW_PROCESS_ID)
                      .limit(1)) is None:
        return []
    candidates = session.scalars(
        select(ProcessGovernance.process_id)
        .where(ProcessGovernance.review_due_on <= on + timedelta(days=DUE_SOON_DAYS))
        .order_by(ProcessGovernance.review_due_on, ProcessGovernance.process_id)).all()
    return [process_id for process_id in candidates if open_review(session, process_id) is None]


def start_due_reviews(engine: Engine, actor: Actor = SYSTEM) -> list[str]:
    """Start the review of every process falling due (the worker does this, so that the
    annual review runs without anyone remembering it); the process ids started.

    Each review starts in its own transaction; one that cannot start (the review process
    is not deployed, another worker started it first) is logged and left for later.
    """
    with unit_of_work(engine, write=False) as uow:
        due = reviews_falling_due(uow.session, today())
    started = []
    for process_id in due:
        try:
            with unit_of_work(engine) as uow:
                start_review(uow, process_id, actor)
        except (Conflict, NotFound) as exc:
            log.info("review of %s not started: %s", process_id, exc)
            continue
        started.append(process_id)
    return started


# -- recording the decisions ---------------------------------------------------------------

_REVIEW_ROW = select(DefinitionReview.id, DefinitionReview.process_id,
                     DefinitionReview.outcome, DefinitionReview.rounds)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _username(value: Any) -> str | None:
    return value[:80] if isinstance(value, str) and value else None


@on_after_step
def record_review_decisions(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                            actor: Actor, audit: AuditBatch) -> None:
    """After a step of a ``definition_review`` instance: record a decision it took."""
    if workflow.spec.name != REVIEW_PROCESS_ID:
        return
    row = conn.execute(_REVIEW_ROW.where(DefinitionReview.instance_id == ref.id)).first()
    if row is None or row.outcome in FINAL:
        return  # starting (the row is written after the first steps), or already decided
    data = case_data(workflow)
    rounds = data.get("review_rounds") if isinstance(data.get("review_rounds"), int) else 0
    now = clock.now()
    values: dict[str, Any] = {
        "rounds": rounds,
        "findings": _text(data.get("review_findings")),
        "changes_made": _text(data.get("changes_made")),
    }
    if ref.status == COMPLETE and data.get("outcome") == APPROVED:
        decided_at = _instant(data.get("approved_at")) or now
        interval = conn.scalar(select(ProcessGovernance.review_interval_months)
                               .where(ProcessGovernance.process_id == row.process_id))
        next_on = due_after(decided_at, interval or 12)
        current = conn.scalar(select(ProcessDefinition.id)
                              .where(ProcessDefinition.process_id == row.process_id)
                              .order_by(ProcessDefinition.version.desc()).limit(1))
        values.update(
            outcome=APPROVED, decided_at=decided_at, next_review_on=next_on,
            approver=_username(data.get("approved_by_user") or data.get("completed_by")),
            approver_name=_text(data.get("approved_by")),
            notes=_text(data.get("senior_management_review_reason")
                        if data.get("senior_management_review_decision") == "approve"
                        else data.get("approval_comments")))
        if current is not None:
            values["definition_id"] = current
        conn.execute(update(ProcessGovernance)
                     .where(ProcessGovernance.process_id == row.process_id)
                     .values(last_approved_at=decided_at, review_due_on=next_on,
                             updated_at=now))
    elif ref.status == COMPLETE and data.get("outcome") == REJECTED:
        values.update(outcome=REJECTED, decided_at=now, next_review_on=None,
                      approver=_username(data.get("completed_by")),
                      notes=_text(data.get("senior_management_review_reason")))
    elif (ref.status == RUNNING and rounds > (row.rounds or 0)
          and data.get("approval_decision") == "send_back"):
        values.update(outcome=SENT_BACK, decided_at=now,
                      approver=_username(data.get("completed_by")),
                      notes=_text(data.get("approval_comments")))
    else:
        return
    conn.execute(update(DefinitionReview).where(DefinitionReview.id == row.id)
                 .values(**values))
    audit.add("definition_review_decided", review_id=row.id, process_id=row.process_id,
              outcome=values["outcome"], by=values.get("approver"), round=rounds,
              next_review_on=values["next_review_on"].isoformat()
              if values.get("next_review_on") else None)


def _instant(value: Any) -> datetime | None:
    try:
        return parse_instant(value) if value else None
    except (TypeError, ValueError):
        return None


# -- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewEvent:
    """One step of a review's history: who completed which task when, and what they said."""

    at: datetime
    actor: str | None
    title: str
    decision: str | None
    comments: str | None


def reviews_of(session: Session, process_id: str) -> list[tuple[DefinitionReview, int]]:
    """The reviews of a process, newest first, each with the version number it names."""
    rows = session.execute(
        select(DefinitionReview, ProcessDefinition.version)
        .join(ProcessDefinition, ProcessDefinition.id == DefinitionReview.definition_id)
        .where(DefinitionReview.process_id == process_id)
        .order_by(DefinitionReview.started_at.desc(), DefinitionReview.id.desc()))
    return [(review, version) for review, version in rows]


def review_by_id(session: Session, process_id: str, review_id: int,
                 ) -> tuple[DefinitionReview, ProcessDefinition] | None:
    row = session.execute(
        select(DefinitionReview, ProcessDefinition)
        .join(ProcessDefinition, ProcessDefinition.id == DefinitionReview.definition_id)
        .where(DefinitionReview.id == review_id,
               DefinitionReview.process_id == process_id)).first()
    return (row[0], row[1]) if row else None


def review_history(session: Session, review: DefinitionReview) -> list[ReviewEvent]:
    """The completed tasks of the review's instance, oldest first (from the audit trail)."""
    if review.instance_id is None:
        return []
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.instance_id == review.instance_id,
                                 AuditEvent.action == "task_completed")
        .order_by(AuditEvent.at, AuditEvent.id))
    out = []
    for event in events:
        details = event.details or {}
        data = details.get("data") or {}
        decision = (data.get("approval_decision")
                    or data.get("senior_management_review_decision"))
        comments = (data.get("approval_comments") or data.get("senior_management_review_reason")
                    or data.get("review_findings"))
        out.append(ReviewEvent(event.at, event.actor, details.get("title") or "task",
                               decision, comments if isinstance(comments, str) else None))
    return out


def review_instance_status(session: Session, review: DefinitionReview) -> str | None:
    if review.instance_id is None:
        return None
    return session.scalar(select(ProcessInstance.status)
                          .where(ProcessInstance.id == review.instance_id))


def open_reviews(session: Session) -> dict[str, DefinitionReview]:
    """The review going on for each process that has one."""
    rows = session.scalars(
        select(DefinitionReview)
        .join(ProcessInstance, ProcessInstance.id == DefinitionReview.instance_id)
        .where(ProcessInstance.status.in_(LIVE_STATUSES),
               DefinitionReview.outcome.is_(None) | DefinitionReview.outcome.not_in(FINAL))
        .order_by(DefinitionReview.id))
    return {review.process_id: review for review in rows}


def latest_approvals(session: Session) -> dict[str, DefinitionReview]:
    """The last approved review of each process."""
    newest = (select(func.max(DefinitionReview.id))
              .where(DefinitionReview.outcome == APPROVED)
              .group_by(DefinitionReview.process_id))
    rows = session.scalars(select(DefinitionReview).where(DefinitionReview.id.in_(newest)))
    return {review.process_id: review for review in rows}
