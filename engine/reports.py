"""The Quality Manager's monthly report (policy 12.1: "Complaints data will be analysed
monthly to identify trends, recurring issues, and improvement opportunities").

For one month and the twelve before it (the trend), in the company's time zone
(``settings.timezone``, Europe/London: a month starts at local midnight on its first day,
so across the clock change a month is not a whole number of 24-hour days):

- complaints received, by channel, by classification (minor, major, unclassified) and by
  product or service (the ten most frequent, grouped case-insensitively);
- complaints closed in the month, and complaints still open at its end;
- deadline performance per deadline name, over the deadlines *due* in the month, from the
  deadline records (``complaint_deadlines``, engine/deadlines.py): met on time, met late,
  missed (passed unmet: overdue now, or unmet when the case was closed), not yet due; and
  the on-time share of those decided (met on time / (met on time + met late + missed));
- the median days from receipt to resolution of the complaints resolved in the month;
- escalations: complaints whose escalation decision deadline (``escalation_decision_by``)
  was set in the month, i.e. escalated in the month (a second escalation of a case
  restarts its record, so a case counts once, in the month of its last escalation);
- recurring issues: the most frequent root causes (``root_cause``, grouped
  case-insensitively, spaces trimmed) of the complaints received in the month, and over
  the thirteen months with the number of months each appeared in.

Only register columns and deadline records are read (plain SQL, workflows are never
deserialized), and only counts and non-personal fields come out: no complainant details,
summaries or descriptions. Need-to-know cases are counted as the register lists them
(engine.register_queries.register_conditions, engine.permissions.visible_complaints
with personal data withheld): the Quality Manager and the Information Security Officer
count them all, auditors too (they read the whole register without personal data),
anyone else only those they own or were granted.

A repeat-complaint flag (the classification decision's ``repeat_complaint`` input) is
case data, not a register column, so it is not reported.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from engine import clock, deadlines, settings
from engine.audit import Actor
from engine.models import Complaint, ComplaintDeadline
from engine.register import CHANNELS
from engine.register_queries import RegisterFilter, register_conditions

#: Roles that may read the report.
REPORT_ROLES = frozenset({"quality_manager", "senior_management", "auditor", "admin"})
#: Months of trend before the chosen month.
TREND_MONTHS = 12
#: How many products or services and root causes are listed.
TOP = 10
CLASSES = ("minor", "major", "unclassified")
#: The deadline that is set when a complainant escalates (escalation.bpmn).
ESCALATION_DEADLINE = "escalation_decision_by"

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def may_read_reports(actor: Actor) -> bool:
    return bool(actor.roles & REPORT_ROLES)


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.load().timezone)


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def title(self) -> str:
        return datetime(self.year, self.month, 1).strftime("%B %Y")

    def start(self) -> datetime:
        """The first instant of the month: local midnight on its first day."""
        return datetime(self.year, self.month, 1, tzinfo=_zone())

    def end(self) -> datetime:
        return self.next().start()

    def next(self) -> Month:
        return Month(self.year, self.month + 1) if self.month < 12 else Month(self.year + 1, 1)

    def previous(self) -> Month:
        return Month(self.year, self.month - 1) if self.month > 1 else Month(self.year - 1, 12)

    @classmethod
    def of(cls, instant: datetime) -> Month:
        local = instant.astimezone(_zone())
        return cls(local.year, local.month)


def last_whole_month(now: datetime | None = None) -> Month:
    return Month.of(now or clock.now()).previous()


def parse_month(text: str, now: datetime | None = None) -> Month:
    """``YYYY-MM``, not after the current month; ValueError with the reason otherwise."""
    found = _MONTH.match((text or "").strip())
    if not found:
        raise ValueError("Give the month as YYYY-MM, e.g. 2026-11.")
    year, month = int(found[1]), int(found[2])
    if not 1 <= month <= 12 or year < 2000:
        raise ValueError(f"{text.strip()} is not a month (YYYY-MM, from 2000-01).")
    chosen = Month(year, month)
    if chosen > Month.of(now or clock.now()):
        raise ValueError(f"{chosen.label} has not begun yet.")
    return chosen


def trend_months(month: Month, before: int = TREND_MONTHS) -> list[Month]:
    """``month`` and the ``before`` months before it, oldest first."""
    months = [month]
    for _ in range(before):
        months.append(months[-1].previous())
    return months[::-1]


@dataclass
class DeadlineFigures:
    name: str
    met_on_time: int = 0
    met_late: int = 0
    missed: int = 0
    not_yet_due: int = 0

    @property
    def label(self) -> str:
        return deadlines.label(self.name)

    @property
    def decided(self) -> int:
        return self.met_on_time + self.met_late + self.missed

    @property
    def on_time_percent(self) -> float | None:
        return round(100 * self.met_on_time / self.decided, 1) if self.decided else None


@dataclass
class MonthFigures:
    month: Month
    received: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_classification: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    products: list[tuple[str, int]] = field(default_factory=list)
    closed: int = 0
    open_at_end: int = 0
    resolved: int = 0
    median_days_to_resolve: float | None = None
    escalations: int = 0
    deadlines: list[DeadlineFigures] = field(default_factory=list)
    root_causes: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class RecurringCause:
    text: str
    complaints: int
    months: int


@dataclass(frozen=True)
class MonthlyReport:
    month: MonthFigures
    #: The chosen month and the twelve before it, oldest first (the last is ``month``).
    trend: list[MonthFigures]
    recurring_causes: list[RecurringCause]
    generated_at: datetime


class _Grouper:
    """Counts free texts case-insensitively, shown as first written."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.shown: dict[str, str] = {}

    def add(self, text: str | None) -> str | None:
        value = " ".join((text or "").split())
        if not value:
            return None
        key = value.casefold()
        self.counts[key] += 1
        self.shown.setdefault(key, value)
        return key

    def top(self, n: int = TOP) -> list[tuple[str, int]]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(self.shown[key], count) for key, count in ranked]


def _visible(session: Session, actor: Actor) -> list[ColumnElement[bool]]:
    return register_conditions(session, actor, RegisterFilter())


def _within(column, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def monthly_report(session: Session, actor: Actor, month: Month,
                   now: datetime | None = None) -> MonthlyReport:
    """The figures of ``month`` and its trend, as ``actor`` may count them."""
    now = now or clock.now()
    months = trend_months(month)
    figures = {m: MonthFigures(m) for m in months}
    start, end = months[0].start(), month.end()
    visible = _visible(session, actor)

    products: dict[Month, _Grouper] = defaultdict(_Grouper)
    causes: dict[Month, _Grouper] = defaultdict(_Grouper)
    all_causes = _Grouper()
    cause_months: dict[str, set[Month]] = defaultdict(set)
    rows = session.execute(
        select(Complaint.received_at, Complaint.channel, Complaint.classification,
               Complaint.product_or_service, Complaint.root_cause)
        .where(*visible, _within(Complaint.received_at, start, end)))
    for received_at, channel, classification, product, root_cause in rows:
        m = Month.of(received_at)
        if m not in figures:
            continue
        f = figures[m]
        f.received += 1
        f.by_channel[channel] = f.by_channel.get(channel, 0) + 1
        f.by_classification[classification if classification in CLASSES[:2]
                            else "unclassified"] += 1
        products[m].add(product)
        key = causes[m].add(root_cause)
        if key is not None:
            all_causes.add(root_cause)
            cause_months[key].add(m)

    for closed_at in session.scalars(select(Complaint.closed_at).where(
            *visible, _within(Complaint.closed_at, start, end))):
        if (m := Month.of(closed_at)) in figures:
            figures[m].closed += 1

    durations: dict[Month, list[float]] = defaultdict(list)
    for received_at, resolved_at in session.execute(
            select(Complaint.received_at, Complaint.resolved_at)
            .where(*visible, _within(Complaint.resolved_at, start, end))):
        if (m := Month.of(resolved_at)) in figures:
            durations[m].append((resolved_at - received_at).total_seconds() / 86400)

    for m in months:
        month_end = min(m.end(), now)
        figures[m].open_at_end = session.scalar(
            select(func.count()).select_from(Complaint).where(
                *visible, Complaint.received_at < month_end,
                or_(Complaint.closed_at.is_(None), Complaint.closed_at >= month_end))) or 0

    per_deadline: dict[Month, dict[str, DeadlineFigures]] = defaultdict(dict)
    for name, due_at, met_at, closed_at in session.execute(
            select(ComplaintDeadline.name, ComplaintDeadline.due_at, ComplaintDeadline.met_at,
                   Complaint.closed_at)
            .join(Complaint, Complaint.id == ComplaintDeadline.complaint_id)
            .where(*visible, _within(ComplaintDeadline.due_at, start, end))):
        m = Month.of(due_at)
        if m not in figures:
            continue
        d = per_deadline[m].setdefault(name, DeadlineFigures(name))
        if met_at is not None:
            if met_at <= due_at:
                d.met_on_time += 1
            else:
                d.met_late += 1
        elif closed_at is not None and closed_at < due_at:
            continue  # the case closed before the deadline fell due: it was not needed
        elif due_at <= now:
            d.missed += 1
        else:
            d.not_yet_due += 1

    for computed_at in session.scalars(
            select(ComplaintDeadline.computed_at)
            .join(Complaint, Complaint.id == ComplaintDeadline.complaint_id)
            .where(*visible, ComplaintDeadline.name == ESCALATION_DEADLINE,
                   _within(ComplaintDeadline.computed_at, start, end))):
        if (m := Month.of(computed_at)) in figures:
            figures[m].escalations += 1

    order = list(deadlines.LABELS)
    for m, f in figures.items():
        f.by_channel = _in_order(f.by_channel, CHANNELS)
        f.products = products[m].top()
        f.root_causes = causes[m].top()
        f.resolved = len(durations[m])
        if durations[m]:
            f.median_days_to_resolve = round(statistics.median(durations[m]), 1)
        f.deadlines = sorted(per_deadline[m].values(), key=lambda d: (
            order.index(d.name) if d.name in order else len(order), d.name))

    recurring = [RecurringCause(text, count, len(cause_months[text.casefold()]))
                 for text, count in all_causes.top()]
    return MonthlyReport(figures[month], [figures[m] for m in months], recurring, now)


def _in_order(counts: dict[str, int], known: Iterable[str]) -> dict[str, int]:
    known = list(known)
    ordered = {name: counts.get(name, 0) for name in known}
    ordered.update({k: v for k, v in sorted(counts.items()) if k not in ordered})
    return ordered


#: The CSV export's columns.
CSV_FIELDS = ("month", "measure", "item", "value")


def figure_rows(figures: MonthFigures) -> list[tuple[str, str, str, str]]:
    """The month's figures as rows (month, measure, item, value): the CSV export."""
    label = figures.month.label
    rows: list[tuple[str, str, str, object]] = [(label, "received", "", figures.received)]
    rows += [(label, "received_by_channel", k, v) for k, v in figures.by_channel.items()]
    rows += [(label, "received_by_classification", k, v)
             for k, v in figures.by_classification.items()]
    rows += [(label, "received_by_product_or_service", k, v) for k, v in figures.products]
    rows += [(label, "closed", "", figures.closed),
             (label, "open_at_month_end", "", figures.open_at_end),
             (label, "resolved", "", figures.resolved),
             (label, "median_days_to_resolve", "",
              "" if figures.median_days_to_resolve is None
              else figures.median_days_to_resolve),
             (label, "escalations", "", figures.escalations)]
    for d in figures.deadlines:
        rows += [(label, f"deadline_{d.name}", "met_on_time", d.met_on_time),
                 (label, f"deadline_{d.name}", "met_late", d.met_late),
                 (label, f"deadline_{d.name}", "missed", d.missed),
                 (label, f"deadline_{d.name}", "not_yet_due", d.not_yet_due),
                 (label, f"deadline_{d.name}", "on_time_percent",
                  "" if d.on_time_percent is None else d.on_time_percent)]
    rows += [(label, "root_cause", k, v) for k, v in figures.root_causes]
    return [(a, b, c, str(v)) for a, b, c, v in rows]
