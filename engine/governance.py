"""Who owns each process definition, and when its annual review is due.

The policy (Review) has the policy, and so every process definition that carries it out,
reviewed at least annually. Each deployed process has one ``process_governance`` row:
its owner (a user holding the process_owner role) and its review interval in months
(default 12, at most 12: "at least annually"). The review is due one interval after the
last approval of a review; a process never approved is due one interval after its
first deployment. The row is made when a process is first deployed
(``ensure_governance``, called by deploy) and for processes deployed before governance
existed (``ensure_all``, called by ``complaints db upgrade`` and by deploy).

Due dates are days in the company's time zone (setting ``COMPLAINTS_TIMEZONE``),
computed with the business calendar's ``add_months`` (the same rule as the scripts'
``add_months``: 31 January + 1 month = 28/29 February). A review is *overdue* after
its due day, *due* from DUE_SOON_DAYS before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.calendar import calendar_from_settings
from engine.errors import Forbidden, InvalidData, NotFound
from engine.models import ProcessDefinition, ProcessGovernance, User
from engine.permissions import may_change_governance

DEFAULT_INTERVAL_MONTHS = 12
#: The policy: "reviewed at least annually".
MAX_INTERVAL_MONTHS = 12
MIN_INTERVAL_MONTHS = 1
#: A review is listed as due this many days before its due date.
DUE_SOON_DAYS = 30

OVERDUE = "overdue"
DUE = "due"
NOT_DUE = "not due"


def today() -> date:
    """The company's current day."""
    return calendar_from_settings().local(clock.now()).date()


def due_after(instant: datetime, interval_months: int) -> date:
    """The day a review is due: ``interval_months`` after ``instant``, in local time."""
    calendar = calendar_from_settings()
    return calendar.local(calendar.add_months(instant, interval_months)).date()


def review_state(due_on: date | None, on: date | None = None) -> str:
    """``overdue`` after the due day, ``due`` within DUE_SOON_DAYS of it, else ``not due``."""
    if due_on is None:
        return NOT_DUE
    on = on or today()
    if due_on < on:
        return OVERDUE
    if due_on <= on + timedelta(days=DUE_SOON_DAYS):
        return DUE
    return NOT_DUE


def first_deployed_at(session: Session, process_id: str) -> datetime | None:
    return session.scalar(select(func.min(ProcessDefinition.deployed_at))
                          .where(ProcessDefinition.process_id == process_id))


def governance_of(session: Session, process_id: str) -> ProcessGovernance | None:
    return session.get(ProcessGovernance, process_id)


def ensure_governance(session: Session, process_id: str, actor: Actor | None = None,
                      ) -> ProcessGovernance:
    """The process's governance row, made on its first deployment if missing.

    The first owner is the deployer when they hold the process_owner role (the command
    line and admins leave it to be set on the definitions page).
    """
    row = session.get(ProcessGovernance, process_id)
    if row is not None:
        return row
    deployed_at = first_deployed_at(session, process_id)
    if deployed_at is None:
        raise NotFound(f"no process {process_id!r} is deployed")
    owner = None
    if actor is not None and actor.has_role("process_owner") and _is_user(session,
                                                                          actor.username):
        owner = actor.username
    row = ProcessGovernance(
        process_id=process_id, owner=owner, review_interval_months=DEFAULT_INTERVAL_MONTHS,
        last_approved_at=None, review_due_on=due_after(deployed_at, DEFAULT_INTERVAL_MONTHS),
        updated_at=clock.now())
    session.add(row)
    session.flush()
    record(session, actor, "governance_created",
           details={"process_id": process_id, "owner": owner,
                    "review_interval_months": row.review_interval_months,
                    "review_due_on": row.review_due_on.isoformat()})
    return row


def ensure_all(session: Session, actor: Actor | None = None) -> list[str]:
    """Make the governance rows of every deployed process that has none; their ids."""
    missing = list(session.scalars(
        select(ProcessDefinition.process_id).distinct()
        .where(ProcessDefinition.process_id.not_in(select(ProcessGovernance.process_id)))
        .order_by(ProcessDefinition.process_id)))
    for process_id in missing:
        ensure_governance(session, process_id, actor)
    return missing


def _is_user(session: Session, username: str) -> bool:
    return session.scalar(select(User.id).where(User.username == username)) is not None


def _owner_error(session: Session, owner: str) -> str | None:
    user = session.scalars(select(User).where(User.username == owner)).first()
    if user is None:
        return f"there is no user {owner!r}"
    if not user.active:
        return f"{owner} is not an active user"
    if "process_owner" not in user.role_names:
        return f"{owner} does not hold the process_owner role"
    return None


def parse_interval(value: object) -> int:
    """A review interval in whole months, 1 to 12; InvalidData (field ``interval``) if not."""
    text = str(value).strip() if value is not None else ""
    message = (f"give a whole number of months from {MIN_INTERVAL_MONTHS} to "
               f"{MAX_INTERVAL_MONTHS} (the policy asks for a review at least annually)")
    if isinstance(value, bool) or not text.isdigit():
        raise InvalidData(message, {"review_interval_months": [message]})
    months = int(text)
    if not MIN_INTERVAL_MONTHS <= months <= MAX_INTERVAL_MONTHS:
        raise InvalidData(message, {"review_interval_months": [message]})
    return months


def set_governance(session: Session, process_id: str, owner: str | None,
                   interval_months: object, actor: Actor) -> ProcessGovernance:
    """Change the owner and review interval of a process (admin or Quality Manager).

    The due date follows: one interval after the last approval (or first deployment).
    Bad input changes nothing and says which field is wrong.
    """
    if not may_change_governance(actor):
        raise Forbidden("only an admin or the Quality Manager may change a process's owner "
                        "and review interval")
    row = ensure_governance(session, process_id)
    errors: dict[str, list[str]] = {}
    owner = (owner or "").strip() or None
    if owner is not None:
        problem = _owner_error(session, owner)
        if problem:
            errors["owner"] = [problem]
    try:
        months = parse_interval(interval_months)
    except InvalidData as error:
        errors.update(error.fields or {})
        months = row.review_interval_months
    if errors:
        raise InvalidData("the process's owner and review interval were not changed", errors)
    before = {"owner": row.owner, "review_interval_months": row.review_interval_months,
              "review_due_on": row.review_due_on.isoformat() if row.review_due_on else None}
    baseline = row.last_approved_at or first_deployed_at(session, process_id)
    row.owner = owner
    row.review_interval_months = months
    row.review_due_on = due_after(baseline, months)
    row.updated_at = clock.now()
    after = {"owner": row.owner, "review_interval_months": months,
             "review_due_on": row.review_due_on.isoformat()}
    if after != before:
        record(session, actor, "governance_changed",
               details={"process_id": process_id, "before": before, "after": after})
    session.flush()
    return row


@dataclass(frozen=True)
class ProcessSummary:
    """One line of the definitions list and the review dashboard."""

    process_id: str
    name: str
    version: int
    deployed_at: datetime
    owner: str | None
    review_interval_months: int
    last_approved_at: datetime | None
    review_due_on: date | None
    running: int

    @property
    def review_state(self) -> str:
        return review_state(self.review_due_on)


def process_summaries(session: Session) -> list[ProcessSummary]:
    """Every deployed process: its current version, governance and running instances."""
    from engine.models import ProcessInstance

    newest = (select(ProcessDefinition.process_id,
                     func.max(ProcessDefinition.version).label("version"))
              .group_by(ProcessDefinition.process_id).subquery())
    running = (select(ProcessInstance.process_id, func.count().label("n"))
               .where(ProcessInstance.status == "running")
               .group_by(ProcessInstance.process_id).subquery())
    rows = session.execute(
        select(ProcessDefinition, ProcessGovernance, func.coalesce(running.c.n, 0))
        .join(newest, (newest.c.process_id == ProcessDefinition.process_id)
              & (newest.c.version == ProcessDefinition.version))
        .outerjoin(ProcessGovernance,
                   ProcessGovernance.process_id == ProcessDefinition.process_id)
        .outerjoin(running, running.c.process_id == ProcessDefinition.process_id)
        .order_by(ProcessDefinition.process_id))
    out = []
    for definition, governance, count in rows:
        out.append(ProcessSummary(
            process_id=definition.process_id, name=definition.name,
            version=definition.version, deployed_at=definition.deployed_at,
            owner=governance.owner if governance else None,
            review_interval_months=(governance.review_interval_months if governance
                                    else DEFAULT_INTERVAL_MONTHS),
            last_approved_at=governance.last_approved_at if governance else None,
            review_due_on=governance.review_due_on if governance else None,
            running=count))
    return out
