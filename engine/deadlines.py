"""Deadline states, and the record of each case's met and missed deadlines.

One rule for every deadline shown anywhere (the inbox, the task page, the case page,
the register): :func:`deadline_state`. A deadline is

``met``       met (its fact recorded) at or before the due time;
``met_late``  met after the due time;
``overdue``   not met and the due time has come;
``due_soon``  not met, not yet due, and at least :data:`DUE_SOON_SHARE` (80 %) of the time
              from its start (a task's creation, the moment a case deadline was
              computed) to the due time has passed;
``on_time``   otherwise.

The record (table ``complaint_deadlines``, one row per case and deadline name) is kept by
the register's after-step hook (engine/register.py calls :func:`sync_deadline_records`):
when the process computes a deadline a row is written with its due time and the moment it
was computed; when the fact that meets it is recorded (``logged_at`` for ``log_by``, ...:
:data:`MET_BY`) the row gets ``met_at``, the actual time; when a step of the case runs
after the due time with the deadline unmet (the policy's deadline timers make that step
at the due time: the worker fires them) the row gets ``missed_at``, the moment the miss
was recorded. Met after being missed is ``met_late`` with both times kept. A deadline the
process recomputes (a second escalation) starts its record again.

Stored states (``complaint_deadlines.state``): ``open``, ``met``, ``met_late``, ``missed``.
Shown states are computed with :func:`deadline_state` at the time of reading, because
"due soon" and "overdue" change with the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, insert, select, update

from engine import settings
from engine.calendar import parse_instant
from engine.models import ComplaintDeadline

ON_TIME = "on_time"
DUE_SOON = "due_soon"
OVERDUE = "overdue"
MET_LATE = "met_late"
MET = "met"
STATES = (ON_TIME, DUE_SOON, OVERDUE, MET_LATE, MET)
#: The words shown for each state.
STATE_WORDS = {ON_TIME: "on time", DUE_SOON: "due soon", OVERDUE: "overdue",
               MET_LATE: "met late", MET: "met"}

#: An unmet deadline is "due soon" once this share of its time has passed.
DUE_SOON_SHARE = 0.8

# Stored states of a record.
OPEN = "open"
MISSED = "missed"

#: What the deadlines of the policy are called on the pages.
LABELS = {
    "log_by": "Log in the register",
    "acknowledge_by": "Acknowledge",
    "ico_escalate_at": "Escalate the ICO decision",
    "ico_notify_by": "Notify the ICO (72 hours)",
    "escalation_decision_by": "Decide the escalation",
    "information_reply_by": "Complainant's reply to a request",
    "resolve_by": "Resolve",
    "satisfaction_reply_by": "Complainant's answer to the resolution",
    "final_response_by": "Final response",
    "effectiveness_check_due": "Check the corrective action",
}

#: Short phrases for the reason of an escalation ("Acknowledgement overdue since ...").
REASONS = {
    "log_by": "Logging",
    "acknowledge_by": "Acknowledgement",
    "resolve_by": "Resolution",
    "ico_notify_by": "ICO notification",
    "ico_escalate_at": "ICO decision",
    "escalation_decision_by": "Escalation decision",
    "final_response_by": "Final response",
}


def deadline_state(start: datetime | None, due: datetime, met_at: datetime | None,
                   now: datetime) -> str:
    """The state of a deadline due at ``due``, started at ``start``, judged at ``now``.

    ``start`` None means unknown: then "due soon" never applies before "overdue".
    """
    if met_at is not None:
        return MET if met_at <= due else MET_LATE
    if due <= now:
        return OVERDUE
    if start is None:
        return ON_TIME
    allowed = (due - start).total_seconds()
    if allowed <= 0:
        return DUE_SOON
    used = (now - start).total_seconds()
    return DUE_SOON if used / allowed >= DUE_SOON_SHARE else ON_TIME


def label(name: str) -> str:
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def local_text(instant: datetime) -> str:
    """``Tue 01 Dec 2026, 17:00`` in the company's time zone (as the pages show times)."""
    zone = ZoneInfo(settings.load().timezone)
    return instant.astimezone(zone).strftime("%a %d %b %Y, %H:%M")


def escalation_reason(name: str, due: datetime, now: datetime) -> str:
    """Why an escalation about deadline ``name`` was raised, with the due time (London)."""
    what = REASONS.get(name) or label(name)
    if due <= now:
        return f"{what} overdue since {local_text(due)}"
    return f"{what} due {local_text(due)}"


#: The task property naming the case deadline whose miss raised the task (an escalation);
#: its title then says why, e.g. "... (Acknowledgement overdue since Wed 30 Dec 2026,
#: 10:00)".
MISSED_DEADLINE_PROPERTY = "missedDeadline"
TITLE_MAX = 255


def task_title(task: Any, now: datetime) -> str:
    """The inbox title of a SpiffWorkflow user task: its name, and for an escalation
    (property ``missedDeadline``) the reason with the deadline's time in London."""
    spec = task.task_spec
    title = spec.bpmn_name or spec.name
    name = (spec.extensions.get("properties", {}).get(MISSED_DEADLINE_PROPERTY) or "").strip()
    if name:
        raw = task.data.get("deadlines")
        due = _instant(raw.get(name)) if isinstance(raw, Mapping) else None
        if due is not None:
            title = f"{title} ({escalation_reason(name, due, now)})"
    return title[:TITLE_MAX]


# -- what meets a deadline ------------------------------------------------------------------

def _instant(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_instant(value)
    except (TypeError, ValueError):
        return None


def _first(*names: str) -> Callable[[Mapping[str, Any]], datetime | None]:
    def met(data: Mapping[str, Any]) -> datetime | None:
        for name in names:
            if (found := _instant(data.get(name))) is not None:
                return found
        return None
    return met


def _after(fact: str, since: str) -> Callable[[Mapping[str, Any]], datetime | None]:
    """``fact`` counts only when it is not older than ``since`` (a repeated stage)."""
    def met(data: Mapping[str, Any]) -> datetime | None:
        found, start = _instant(data.get(fact)), _instant(data.get(since))
        if found is None or (start is not None and found < start):
            return None
        return found
    return met


def _information_reply(data: Mapping[str, Any]) -> datetime | None:
    log = data.get("information_request_log")
    if isinstance(log, list) and log and isinstance(log[-1], Mapping):
        return _instant(log[-1].get("replied_at"))
    return None


#: The fact (from the case data) that meets each deadline, as a function of the data.
MET_BY: dict[str, Callable[[Mapping[str, Any]], datetime | None]] = {
    "log_by": _first("logged_at"),
    "acknowledge_by": _first("acknowledged_at"),
    "resolve_by": _first("first_resolved_at", "resolved_at"),
    "final_response_by": _after("resolved_at", "escalated_at"),
    "ico_notify_by": _first("ico_notified_at", "ico_decided_at"),
    "ico_escalate_at": _first("ico_decided_at"),
    "escalation_decision_by": _after("escalation_decided_at", "escalated_at"),
    "information_reply_by": _information_reply,
}


def met_at(name: str, data: Mapping[str, Any]) -> datetime | None:
    rule = MET_BY.get(name)
    return rule(data) if rule else None


# -- the record -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """What a ``complaint_deadlines`` row holds (also kept on the workflow as a cache)."""

    due_at: datetime
    computed_at: datetime
    met_at: datetime | None
    missed_at: datetime | None
    state: str


def next_record(old: Record | None, due: datetime, met: datetime | None,
                now: datetime) -> Record:
    """The record of a deadline after a step at ``now``."""
    if old is None or old.due_at != due:
        computed_at, missed_at = now, None
    else:
        computed_at, missed_at = old.computed_at, old.missed_at
    if met is None and old is not None and old.due_at == due:
        met = old.met_at  # a met deadline stays met
    if met is None and due <= now and missed_at is None:
        missed_at = now
    if met is not None:
        state = MET if met <= due else MET_LATE
    else:
        state = MISSED if missed_at is not None else OPEN
    return Record(due, computed_at, met, missed_at, state)


_TABLE = ComplaintDeadline.__table__
_SELECT = select(_TABLE.c.name, _TABLE.c.due_at, _TABLE.c.computed_at, _TABLE.c.met_at,
                 _TABLE.c.missed_at, _TABLE.c.state).where(
    _TABLE.c.complaint_id == bindparam("complaint_id"))
_INSERT = insert(_TABLE)
_UPDATE = (update(_TABLE)
           .where(_TABLE.c.complaint_id == bindparam("b_complaint_id"),
                  _TABLE.c.name == bindparam("b_name"))
           .values(due_at=bindparam("due_at"), computed_at=bindparam("computed_at"),
                   met_at=bindparam("met_at"), missed_at=bindparam("missed_at"),
                   state=bindparam("state"), updated_at=bindparam("updated_at")))


def stored_records(conn: Connection, complaint_id: int) -> dict[str, Record]:
    return {row.name: Record(row.due_at, row.computed_at, row.met_at, row.missed_at, row.state)
            for row in conn.execute(_SELECT, {"complaint_id": complaint_id})}


def sync_deadline_records(
    conn: Connection, complaint_id: int, deadlines: Mapping[str, str],
    data: Mapping[str, Any], known: dict[str, Record] | None, now: datetime,
    audit: Any = None,
) -> dict[str, Record]:
    """Bring the case's deadline rows in step with its deadlines and facts; return them.

    ``known`` is what the rows hold (None: read them). Only changed rows are written.
    ``audit`` (an AuditBatch) gets ``deadline_met`` / ``deadline_missed`` events.
    """
    if known is None:
        known = stored_records(conn, complaint_id)
    records = dict(known)
    inserts, updates = [], []
    for name, text in deadlines.items():
        due = _instant(text)
        if due is None:
            continue
        old = known.get(name)
        new = next_record(old, due, met_at(name, data), now)
        if new == old:
            continue
        records[name] = new
        values = {"due_at": new.due_at, "computed_at": new.computed_at, "met_at": new.met_at,
                  "missed_at": new.missed_at, "state": new.state, "updated_at": now}
        if old is None:
            inserts.append({"complaint_id": complaint_id, "name": name, **values})
        else:
            updates.append({"b_complaint_id": complaint_id, "b_name": name, **values})
        if audit is not None:
            if new.met_at is not None and (old is None or old.met_at != new.met_at):
                audit.add("deadline_met", deadline=name, due_at=new.due_at.isoformat(),
                          met_at=new.met_at.isoformat(), late=new.state == MET_LATE)
            if new.missed_at is not None and (old is None or old.missed_at is None
                                              or old.due_at != new.due_at):
                audit.add("deadline_missed", deadline=name, due_at=new.due_at.isoformat(),
                          recorded_at=new.missed_at.isoformat())
    if inserts:
        conn.execute(_INSERT, inserts)
    if updates:
        conn.execute(_UPDATE, updates)
    return records


def records_of(conn: Connection | Any, complaint_ids: Iterable[int]) -> dict[int, list[Any]]:
    """The ``complaint_deadlines`` rows of these complaints (ORM objects), by complaint."""
    ids = sorted(set(complaint_ids))
    out: dict[int, list[Any]] = {i: [] for i in ids}
    if not ids:
        return out
    for row in conn.scalars(select(ComplaintDeadline).where(
            ComplaintDeadline.complaint_id.in_(ids))):
        out[row.complaint_id].append(row)
    return out
