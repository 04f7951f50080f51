"""Company closure days (kept in the database) and the calendar that includes them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.calendar import BusinessCalendar, calendar_from_settings
from engine.models import ClosureDay


def load_calendar(session: Session) -> BusinessCalendar:
    """The business calendar of the settings plus today's closure days."""
    return calendar_from_settings(session.scalars(select(ClosureDay.day)).all())


def add_closure_day(session: Session, day: date, reason: str, actor: Actor) -> ClosureDay:
    row = session.get(ClosureDay, day)
    if row is None:
        row = ClosureDay(day=day, reason=reason, created_by=actor.username, created_at=clock.now())
        session.add(row)
        record(session, actor, "closure_day_added", details={"day": day.isoformat(),
                                                             "reason": reason})
    return row


def remove_closure_day(session: Session, day: date, actor: Actor) -> bool:
    row = session.get(ClosureDay, day)
    if row is None:
        return False
    session.delete(row)
    record(session, actor, "closure_day_removed", details={"day": day.isoformat()})
    return True
