"""Functions that BPMN scripts, conditions and timer expressions may call.

Every instant a helper returns is an ISO-8601 string in UTC with an explicit
``+00:00`` (whole seconds): task data must stay JSON, and SpiffWorkflow timer
expressions must evaluate to such a string (a ``datetime`` fails, a naive string is
read in the server's local zone). Instants are accepted as such strings or as aware
datetimes. Helper names are reserved: task data may not use them (the sandbox refuses
a field or variable named like a helper).

Example timer (``timeDate``) expression: ``add_business_days(received_at, 3)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

from engine.calendar import BusinessCalendar, iso, parse_instant
from engine.sandbox import ScriptError

__all__ = ["HELPER_NAMES", "script_helpers"]

HELPER_NAMES: tuple[str, ...] = (
    "now",
    "add_business_days",
    "add_hours",
    "add_days",
    "add_months",
    "is_business_day",
    "parse_instant",
)


class _Clock(Protocol):
    def now(self) -> datetime: ...


def _instant(value: Any, helper: str) -> datetime:
    if isinstance(value, (str, datetime)):
        try:
            return parse_instant(value)
        except (TypeError, ValueError) as exc:
            raise ScriptError(f"{helper}(): {exc}") from None
    raise ScriptError(
        f"{helper}() needs a date and time as ISO-8601 text such as "
        f"'2026-12-21T14:30:00+00:00', got {type(value).__name__}"
    )


def _whole(value: Any, helper: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ScriptError(f"{helper}() needs a whole number of {what}, got {value!r}")
    return value


def _number(value: Any, helper: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScriptError(f"{helper}() needs a number of hours, got {value!r}")
    return value


def _day(value: Any, calendar: BusinessCalendar, helper: str) -> date:
    if isinstance(value, datetime):
        return calendar.local(_instant(value, helper)).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:  # a plain date: 2026-12-25
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        return calendar.local(_instant(text, helper)).date()
    raise ScriptError(
        f"{helper}() needs a date ('2026-12-25') or a date and time, got {type(value).__name__}"
    )


def _checked(helper: str, compute: Callable[[], datetime]) -> str:
    try:
        return iso(compute())
    except ScriptError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ScriptError(f"{helper}(): {exc}") from None


def script_helpers(calendar: BusinessCalendar, clock: _Clock) -> dict[str, Callable]:
    """The helper functions for scripts, bound to a business calendar and a clock."""

    def now() -> str:
        """The current instant (the engine clock), as ISO text."""
        return iso(clock.now())

    def add_business_days(instant: str | datetime, n: int) -> str:
        """The same local time on the n-th business day after the instant (see calendar)."""
        start = _instant(instant, "add_business_days")
        days = _whole(n, "add_business_days", "business days")
        return _checked("add_business_days", lambda: calendar.add_business_days(start, days))

    def add_hours(instant: str | datetime, hours: float) -> str:
        """Elapsed hours after the instant (nights, weekends and holidays count)."""
        start = _instant(instant, "add_hours")
        amount = _number(hours, "add_hours")
        return _checked("add_hours", lambda: calendar.add_hours(start, amount))

    def add_days(instant: str | datetime, n: int) -> str:
        """The same local clock time n calendar days later (any day of the week)."""
        start = _instant(instant, "add_days")
        days = _whole(n, "add_days", "days")
        return _checked("add_days", lambda: calendar.add_calendar_days(start, days))

    def add_months(instant: str | datetime, n: int) -> str:
        """The same local clock time n months later (day clipped to the month's end)."""
        start = _instant(instant, "add_months")
        months = _whole(n, "add_months", "months")
        return _checked("add_months", lambda: calendar.add_months(start, months))

    def is_business_day(instant_or_date: str | datetime | date) -> bool:
        """Whether the (local) day is a business day of the calendar."""
        return calendar.is_business_day(_day(instant_or_date, calendar, "is_business_day"))

    def parse_instant_(value: str | datetime) -> str:
        """An ISO date and time with an offset, normalised to UTC ``+00:00`` text."""
        return iso(_instant(value, "parse_instant"))

    return {
        "now": now,
        "add_business_days": add_business_days,
        "add_hours": add_hours,
        "add_days": add_days,
        "add_months": add_months,
        "is_business_day": is_business_day,
        "parse_instant": parse_instant_,
    }
