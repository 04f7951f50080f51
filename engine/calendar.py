"""The business calendar: the one place that turns "N working days" into an instant.

Every deadline in the complaints policy is computed here. The rules below are the
conventions a process owner (and an auditor) can rely on.

What is a business day
    A *business day* (the policy also says *working day*; they mean the same) is a
    Monday to Friday that is neither a bank holiday of the calendar's region nor a
    company closure day. Regions are England (GB-ENG), Wales (GB-WLS), Scotland
    (GB-SCT) and Northern Ireland (GB-NIR); the region is the setting
    COMPLAINTS_CALENDAR (default GB-ENG). Bank holidays come from the ``holidays``
    package, pinned in pyproject.toml because its data changes between releases (one-off
    holidays are added as they are announced). Substitute days count: when Christmas
    Day falls on a Saturday, the following Monday ("Christmas Day (observed)") is not a
    business day. Company closure days are entered by an administrator and passed in.

Counting business days (``add_business_days``; e.g. log within 1, acknowledge within 3)
    1. If the complaint arrives on a day that is not a business day (a weekend, a bank
       holiday or a closure day) it counts as received at 09:00 (``day_start``) on the
       next business day.
    2. Counting starts on the day *after* the (effective) day of receipt.
    3. The deadline is the *same time of day* on the N-th business day counted.
    Example (England & Wales): received Monday 21 December 2026 at 14:30, due within 3
    working days: Thursday 24 December 2026 at 14:30. Received Wednesday 23 December
    at 10:00: due Wednesday 30 December at 10:00, because 25 December (Christmas), the
    weekend and Monday 28 December (Boxing Day, observed) are skipped.
    N = 0 gives the effective time of receipt; a negative N is refused.

Elapsed hours (``add_hours``; e.g. the 72-hour ICO breach notification)
    Plain elapsed time: nights, weekends, bank holidays and clock changes all count.
    72 hours after Saturday 27 March 2027 12:00 GMT is Tuesday 30 March 2027 13:00 BST
    (the clocks went forward in between, so it is 12:00 UTC).

Calendar days and months (``add_calendar_days``, ``add_months``)
    The same local clock time N days (or months) later, whatever the day of the week:
    these deadlines are *not* moved off weekends or bank holidays. A month later is the
    same day of the month, or the last day of the month when that day does not exist
    (31 January + 1 month = 28 February, or 29 February in a leap year). Always count
    from the receipt: an extension of 2 months on a 1-month deadline is
    ``add_months(received, 3)``, not two additions in a row (31 Jan -> 28 Feb -> 28 Mar
    would lose three days). A negative N counts backwards (e.g. a reminder before a
    deadline).

Clock changes (Europe/London)
    Local clock arithmetic is done in the calendar's time zone (the setting
    COMPLAINTS_TIMEZONE, default Europe/London), then converted back to UTC. When the
    resulting local time does not exist (clocks go forward: 01:00-02:00 on the last
    Sunday of March) it is moved forward by the gap, so 01:30 becomes 02:30 BST. When
    it happens twice (clocks go back: 01:00-02:00 on the last Sunday of October) the
    first occurrence (BST) is taken. Business-day deadlines never land on a Sunday, so
    this only matters for calendar days and months.

Instants
    Every method takes timezone-aware datetimes (a naive one is refused, because it is
    not an instant) and returns aware datetimes in UTC. Store them with ``iso`` (UTC,
    explicit "+00:00", whole seconds: the form SpiffWorkflow timers need) and read them
    back with ``parse_instant``; show them with ``BusinessCalendar.local``.
"""

from __future__ import annotations

import calendar
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from engine import settings

__all__ = ["REGIONS", "BusinessCalendar", "calendar_from_settings", "iso", "parse_instant"]

_SUBDIVISIONS = {"GB-ENG": "ENG", "GB-WLS": "WLS", "GB-SCT": "SCT", "GB-NIR": "NIR"}
REGIONS: tuple[str, ...] = tuple(_SUBDIVISIONS)

CLOSURE_NAME = "Company closure"


class BusinessCalendar:
    """Business days and deadlines for one region, time zone and set of closure days."""

    def __init__(
        self,
        region: str = "GB-ENG",
        timezone: str = "Europe/London",
        closure_days: Iterable[date] = (),
        day_start: time = time(9, 0),
    ):
        canonical = region.strip().upper() if isinstance(region, str) else region
        if canonical not in _SUBDIVISIONS:
            raise ValueError(f"unknown calendar region {region!r}: use one of {', '.join(REGIONS)}")
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/London'"
            ) from None
        if day_start.tzinfo is not None:
            raise ValueError("day_start is a local clock time and must not carry a tzinfo")
        self.region: str = canonical
        self.tz: ZoneInfo = tz
        self.closure_days: frozenset[date] = frozenset(
            _require_date(day, "closure day") for day in closure_days
        )
        self.day_start: time = day_start
        self._subdivision = _SUBDIVISIONS[canonical]
        self._bank_holidays: dict[int, dict[date, str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar(region={self.region!r}, timezone={self.tz.key!r}, "
            f"closure_days={len(self.closure_days)}, day_start={self.day_start!r})"
        )

    # -- days -------------------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        day = _require_date(day, "day")
        return (
            day.weekday() < 5
            and day not in self.closure_days
            and day not in self._holidays_of(day.year)
        )

    def holiday_name(self, day: date) -> str | None:
        """The bank holiday's name, "Company closure", both joined by "; ", or None."""
        day = _require_date(day, "day")
        names = []
        if bank_holiday := self._holidays_of(day.year).get(day):
            names.append(bank_holiday)
        if day in self.closure_days:
            names.append(CLOSURE_NAME)
        return "; ".join(names) or None

    def holidays_between(self, start: date, end: date) -> list[tuple[date, str]]:
        """Bank holidays and closure days from ``start`` to ``end`` inclusive, by date."""
        start = _require_date(start, "start")
        end = _require_date(end, "end")
        days = {d for d in self.closure_days if start <= d <= end}
        for year in range(start.year, end.year + 1):
            days.update(d for d in self._holidays_of(year) if start <= d <= end)
        return [(day, self.holiday_name(day) or "") for day in sorted(days)]

    def _holidays_of(self, year: int) -> dict[date, str]:
        """Bank holidays of one year, loaded on first use and kept (shared by threads)."""
        found = self._bank_holidays.get(year)
        if found is None:
            with self._lock:
                found = self._bank_holidays.get(year)
                if found is None:
                    # A plain dict: the holidays object would load further years
                    # (unlocked) whenever a date outside ``year`` is looked up in it.
                    found = dict(
                        holidays.country_holidays("GB", subdiv=self._subdivision, years=year)
                    )
                    self._bank_holidays[year] = found
        return found

    # -- instants ---------------------------------------------------------------------

    def local(self, instant: datetime) -> datetime:
        """The instant on the calendar's local clock (for display and day arithmetic)."""
        return _require_aware(instant).astimezone(self.tz)

    def next_business_day_start(self, instant: datetime) -> datetime:
        """The effective time of receipt: the instant itself if its local day is a
        business day, otherwise ``day_start`` on the next business day."""
        local = self.local(instant)
        if self.is_business_day(local.date()):
            return local.astimezone(UTC)
        day = local.date() + timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return self._at(day, self.day_start)

    def add_business_days(self, instant: datetime, n: int) -> datetime:
        """The same local time on the n-th business day after the effective receipt."""
        _require_count(n)
        received = self.next_business_day_start(instant)
        if n == 0:
            return received
        local = self.local(received)
        day = local.date()
        while n:
            day += timedelta(days=1)
            if self.is_business_day(day):
                n -= 1
        return self._at(day, local.time())

    def add_hours(self, instant: datetime, hours: float) -> datetime:
        """Elapsed time: weekends, holidays and clock changes included."""
        return _require_aware(instant).astimezone(UTC) + timedelta(hours=hours)

    def add_calendar_days(self, instant: datetime, n: int) -> datetime:
        """The same local clock time n calendar days later (any day of the week)."""
        local = self.local(instant)
        if n == 0:
            return local.astimezone(UTC)
        return self._at(local.date() + timedelta(days=n), local.time())

    def add_months(self, instant: datetime, n: int) -> datetime:
        """The same local clock time n months later; the day is clipped to the month's
        last day (31 January + 1 month = 28 or 29 February)."""
        local = self.local(instant)
        if n == 0:
            return local.astimezone(UTC)
        year, month0 = divmod(local.year * 12 + local.month - 1 + n, 12)
        last_day = calendar.monthrange(year, month0 + 1)[1]
        day = date(year, month0 + 1, min(local.day, last_day))
        return self._at(day, local.time())

    def _at(self, day: date, clock: time) -> datetime:
        return _resolve_local(datetime.combine(day, clock), self.tz)


def _resolve_local(wall_clock: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the clocks in ``tz`` show ``wall_clock`` (naive).

    Every rebuilt local time goes through here so that clock changes are handled one
    way. ``fold=0`` selects the offset in force *before* a transition (PEP 495): for a
    time that happens twice when the clocks go back, that is the first one (BST); for a
    time skipped when they go forward, the old offset puts it after the gap, i.e. moved
    forward by the gap (01:30 -> 02:30 BST).
    """
    return wall_clock.replace(tzinfo=tz, fold=0).astimezone(UTC)


def calendar_from_settings(closure_days: Iterable[date] = ()) -> BusinessCalendar:
    """The calendar configured by COMPLAINTS_CALENDAR and COMPLAINTS_TIMEZONE."""
    configured = settings.load()
    return BusinessCalendar(
        region=configured.calendar, timezone=configured.timezone, closure_days=closure_days
    )


def iso(instant: datetime) -> str:
    """UTC ISO-8601 with an explicit "+00:00" and whole seconds (fractions dropped)."""
    utc = _require_aware(instant).astimezone(UTC).replace(microsecond=0)
    return utc.isoformat()


def parse_instant(value: str | datetime) -> datetime:
    """An ISO-8601 string (or datetime) carrying an offset, as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date and time") from None
        return _require_aware(parsed, repr(value)).astimezone(UTC)
    return _require_aware(value).astimezone(UTC)


# -- argument checks ------------------------------------------------------------------


def _require_aware(instant: datetime, what: str | None = None) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"expected an aware datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"{what or f'datetime {instant.isoformat()}'} has no time zone: an instant must"
            " be aware, e.g. datetime(..., tzinfo=ZoneInfo('Europe/London')) or an"
            " ISO-8601 string ending in +00:00"
        )
    return instant


def _require_date(day: date, what: str) -> date:
    # A datetime is a date too, but which local day it falls on depends on the zone.
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(
            f"{what} must be a date, got {type(day).__name__}; for an instant use"
            " calendar.local(instant).date()"
        )
    return day


def _require_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"a number of business days must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"a number of business days cannot be negative, got {n}")
