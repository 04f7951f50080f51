"""Company closure days (kept in the database) and the calendar that includes them."""

from __future__ import annotations

import functools
from datetime import date

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.calendar import BusinessCalendar
from engine.models import ClosureDay
from engine.prepared import Prepared
from engine.settings import load as load_settings

_CLOSURE_DAYS = Prepared(select(ClosureDay.day))


def load_calendar(conn: Connection | Session) -> BusinessCalendar:
    """The business calendar of the settings plus the closure days stored now."""
    connection = conn.connection() if isinstance(conn, Session) else conn
    closure_days = frozenset(day for (day,) in _CLOSURE_DAYS.all(connection, {}))
    settings = load_settings()
    return _calendar(settings.calendar, settings.timezone, closure_days)


@functools.lru_cache(maxsize=32)
def _calendar(region: str, timezone: str, closure_days: frozenset[date]) -> BusinessCalendar:
    # Cached so that the bank holidays of a year are computed once per process.
    return BusinessCalendar(region, timezone, closure_days)


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
