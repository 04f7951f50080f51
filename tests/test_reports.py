"""The monthly report (policy 12.1; engine/reports.py): counts per London month, deadline
performance from the deadline records, recurring root causes, and need-to-know cases
counted only for those who may see them.

Complaints are recorded through the engine (the register's own process from
tests/fixtures/register) with the manual clock; the report's inputs that later steps
would write (classification, root cause, resolution and closing times, deadline records)
are then set on the register row directly, so that each figure has a known answer. Runs on
SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select

import engine.instances  # noqa: F401 - the engine first (its hooks import the register)
from engine.audit import Actor
from engine.db import unit_of_work
from engine.instances import complete_task
from engine.models import Complaint, ComplaintDeadline, HumanTask
from engine.register import record_complaint
from engine.reports import Month, last_whole_month, monthly_report, parse_month

from .conftest import FIXTURES
from .support import seeded_database
from .test_api_complaints import EVERYONE, USERS

READERS = {**USERS, "sally": ["senior_management"]}
RECORDER = Actor("sam", frozenset({"staff"}))
QM = Actor("quinn", frozenset({"staff", "quality_manager"}))
SENIOR = Actor("sally", frozenset({"senior_management"}))
AUDITOR = Actor("aud", frozenset({"auditor"}))
NOVEMBER = Month(2026, 11)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, READERS, [FIXTURES / "register"], EVERYONE)


def recorded(db, received_at: str, channel: str = "email", *,
             deadline_records: dict[str, tuple[str, str | None]] | None = None,
             computed: dict[str, str] | None = None, **columns: Any) -> int:
    """A complaint recorded by the engine, then given the register ``columns`` and, instead
    of the records its process wrote, ``deadline_records`` (name -> due, met)."""
    with unit_of_work(db) as uow:
        row = record_complaint(uow, {
            "channel": channel, "received_at": received_at,
            "complainant": {"name": "Ann Example", "email": "ann@example.org"},
            "summary": "Parcel arrived broken", "description": "The parcel was crushed."},
            RECORDER)
        for name, value in columns.items():
            setattr(row, name, at(value) if name.endswith("_at") and value else value)
        uow.session.execute(delete(ComplaintDeadline).where(
            ComplaintDeadline.complaint_id == row.id))
        for name, (due, met) in (deadline_records or {}).items():
            uow.session.add(ComplaintDeadline(
                complaint_id=row.id, name=name, due_at=at(due),
                computed_at=at((computed or {}).get(name, received_at)),
                met_at=at(met) if met else None, missed_at=None,
                state="met" if met else "open", updated_at=at(received_at)))
        return row.id


def report(db, actor: Actor = QM, month: Month = NOVEMBER):
    with unit_of_work(db, write=False) as uow:
        return monthly_report(uow.session, actor, month)


@pytest.fixture
def autumn(db):
    """Complaints of October to December 2026 (now is Monday 21 December 2026)."""
    recorded(db, "2026-11-03T10:00:00+00:00", "email", classification="minor",
             product_or_service="Parcels", root_cause="Courier damage",
             resolved_at="2026-11-13T10:00:00+00:00", closed_at="2026-11-20T10:00:00+00:00",
             status="closed", deadline_records={
                 "acknowledge_by": ("2026-11-06T12:00:00+00:00", "2026-11-05T09:00:00+00:00")})
    recorded(db, "2026-11-15T10:00:00+00:00", "letter", classification="major",
             product_or_service=" parcels ", root_cause="courier  DAMAGE",
             resolved_at="2026-11-19T10:00:00+00:00", status="escalated",
             deadline_records={
                 "acknowledge_by": ("2026-11-18T12:00:00+00:00", "2026-11-19T09:00:00+00:00"),
                 "resolve_by": ("2026-11-25T17:00:00+00:00", None),
                 "escalation_decision_by": ("2026-11-27T17:00:00+00:00", None)},
             computed={"escalation_decision_by": "2026-11-20T10:00:00+00:00"})
    recorded(db, "2026-11-28T10:00:00+00:00", "telephone", product_or_service="Website",
             deadline_records={"log_by": ("2026-11-29T17:00:00+00:00", None),
                               "acknowledge_by": ("2026-12-01T17:00:00+00:00", None)})
    recorded(db, "2026-10-10T10:00:00+00:00", "email", classification="minor",
             root_cause="Courier damage", closed_at="2026-11-02T10:00:00+00:00",
             status="closed",
             deadline_records={"resolve_by": ("2026-11-10T17:00:00+00:00", None)})
    recorded(db, "2026-12-02T10:00:00+00:00", "website",
             deadline_records={"resolve_by": ("2026-12-30T17:00:00+00:00", None)})


def test_the_default_month_is_the_last_whole_month_in_london(manual_clock):
    assert last_whole_month() == NOVEMBER
    assert last_whole_month(at("2026-12-31T23:30:00+00:00")) == NOVEMBER
    assert last_whole_month(at("2027-01-01T00:00:00+00:00")) == Month(2026, 12)


@pytest.mark.parametrize(("text", "reason"), [
    ("2026-13", "not a month"), ("November", "YYYY-MM"), ("2026-1", "YYYY-MM"),
    ("2027-01", "has not begun")])
def test_a_month_is_given_as_year_and_month_not_in_the_future(manual_clock, text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_month(text)
    assert parse_month("2026-12") == Month(2026, 12)


def test_the_month_counts_complaints_received_by_channel_classification_and_product(
        db, autumn):
    m = report(db).month
    assert m.received == 3
    assert m.by_channel == {"email": 1, "telephone": 1, "letter": 1, "in_person": 0,
                            "website": 0}
    assert m.by_classification == {"minor": 1, "major": 1, "unclassified": 1}
    assert m.products == [("Parcels", 2), ("Website", 1)]


def test_closed_open_and_time_to_resolve_are_counted_in_the_month_they_happen(db, autumn):
    m = report(db).month
    assert m.closed == 2  # one received in October, closed on 2 November
    assert m.open_at_end == 2
    assert (m.resolved, m.median_days_to_resolve) == (2, 7.0)  # 10 and 4 days
    assert m.escalations == 1


def test_deadlines_due_in_the_month_are_met_on_time_met_late_or_missed(db, autumn):
    figures = {d.name: d for d in report(db).month.deadlines}
    ack = figures["acknowledge_by"]
    assert (ack.met_on_time, ack.met_late, ack.missed, ack.on_time_percent) == (1, 1, 0, 50.0)
    resolve = figures["resolve_by"]  # the closed case's unmet one was not needed
    assert (resolve.met_on_time, resolve.met_late, resolve.missed) == (0, 0, 1)
    assert resolve.on_time_percent == 0.0
    assert figures["log_by"].missed == 1
    assert figures["escalation_decision_by"].missed == 1
    assert list(figures) == ["log_by", "acknowledge_by", "escalation_decision_by",
                             "resolve_by"]  # in the order of the policy
    december = {d.name: d for d in report(db, month=Month(2026, 12)).month.deadlines}
    assert december["resolve_by"].not_yet_due == 1
    assert december["resolve_by"].on_time_percent is None
    assert december["acknowledge_by"].missed == 1


def test_root_causes_are_grouped_whatever_their_case_and_counted_across_months(db, autumn):
    r = report(db)
    assert [(text.casefold(), n) for text, n in r.month.root_causes] == [
        ("courier damage", 2)]
    assert [(c.text.casefold(), c.complaints, c.months) for c in r.recurring_causes] == [
        ("courier damage", 3, 2)]


def test_the_trend_holds_the_month_and_the_twelve_before_it(db, autumn):
    trend = report(db).trend
    assert [t.month.label for t in trend][::12] == ["2025-11", "2026-11"]
    assert len(trend) == 13
    october = trend[-2]
    assert (october.month.label, october.received, october.closed, october.open_at_end) == (
        "2026-10", 1, 0, 1)


def test_months_begin_at_london_midnight_across_the_clock_change(db):
    # British Summer Time: 1 April 2026 begins at 23:00 UTC on 31 March, 1 October at
    # 23:00 UTC on 30 September; after the clocks go back (25 October) Greenwich time:
    # 1 November begins at midnight UTC.
    recorded(db, "2026-03-31T22:59:00+00:00")  # 23:59 on 31 March, London
    recorded(db, "2026-03-31T23:30:00+00:00")  # 00:30 on 1 April
    recorded(db, "2026-09-30T23:30:00+00:00")  # 00:30 on 1 October
    recorded(db, "2026-10-31T23:30:00+00:00")  # 23:30 on 31 October
    recorded(db, "2026-11-01T00:00:00+00:00")  # midnight, 1 November
    received = {t.month.label: t.received for t in report(db).trend}
    assert (received["2026-03"], received["2026-04"], received["2026-09"],
            received["2026-10"], received["2026-11"]) == (1, 1, 0, 2, 1)


def test_deadline_records_kept_by_the_process_give_met_on_time_and_met_late(
        db, manual_clock):
    """Two complaints received on Monday 2 November 2026 through the register's process
    (log_by: the next business day): one logged at once, one three days later."""
    manual_clock.set(at("2026-11-02T09:30:00+00:00"))
    ids = [_record(db, "2026-11-02T09:00:00+00:00") for _ in range(2)]
    _complete_log(db, ids[0])
    manual_clock.set(at("2026-11-05T10:00:00+00:00"))
    _complete_log(db, ids[1])
    manual_clock.set(at("2026-12-21T14:30:00+00:00"))
    figures = {d.name: d for d in report(db).month.deadlines}
    log = figures["log_by"]
    assert (log.met_on_time, log.met_late, log.missed, log.on_time_percent) == (1, 1, 0, 50.0)
    assert figures["acknowledge_by"].missed == 2  # nobody acknowledged either


def _record(db, received_at: str) -> int:
    with unit_of_work(db) as uow:
        return record_complaint(uow, {
            "channel": "email", "received_at": received_at,
            "complainant": {"name": "Ann Example"}, "summary": "Parcel arrived broken",
            "description": "The parcel was crushed."}, RECORDER).id


def _complete_log(db, complaint_id: int) -> None:
    with unit_of_work(db) as uow:
        task_id = uow.session.scalars(select(HumanTask.id).join(
            Complaint, Complaint.instance_id == HumanTask.instance_id).where(
            Complaint.id == complaint_id, HumanTask.bpmn_id == "log",
            HumanTask.state == "ready")).one()
        complete_task(uow, task_id, {"owner": "owen", "personal_data_involved": False},
                      RECORDER)


@pytest.fixture
def need_to_know(db):
    """One ordinary complaint and a need-to-know one owned by owen, both in November."""
    recorded(db, "2026-11-10T10:00:00+00:00", classification="minor",
             root_cause="Late reply", deadline_records={
                 "acknowledge_by": ("2026-11-13T17:00:00+00:00", "2026-11-11T09:00:00+00:00")})
    recorded(db, "2026-11-12T10:00:00+00:00", classification="major", need_to_know=True,
             personal_data_involved=True, owner="owen", root_cause="Data sent to a stranger",
             deadline_records={"acknowledge_by": ("2026-11-15T17:00:00+00:00", None)})


def test_need_to_know_cases_are_counted_for_the_quality_manager_and_auditors(
        db, need_to_know):
    for reader in (QM, AUDITOR):
        m = report(db, reader).month
        assert m.received == 2
        assert m.by_classification["major"] == 1
        assert {d.name: d.missed for d in m.deadlines} == {"acknowledge_by": 1}
        assert len(m.root_causes) == 2


def test_need_to_know_cases_are_left_out_of_the_counts_of_those_who_may_not_see_them(
        db, need_to_know):
    m = report(db, SENIOR).month
    assert (m.received, m.by_classification["major"], m.open_at_end) == (1, 0, 1)
    assert [(d.name, d.met_on_time, d.missed) for d in m.deadlines] == [
        ("acknowledge_by", 1, 0)]
    assert m.root_causes == [("Late reply", 1)]
    assert [c.text for c in report(db, SENIOR).recurring_causes] == ["Late reply"]
    with unit_of_work(db, write=False) as uow:  # the case is there, counted for others
        assert uow.session.scalar(select(Complaint.need_to_know).where(
            Complaint.owner == "owen")) is True
