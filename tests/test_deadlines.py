"""Deadlines (issue 5, part 3): one state rule, and the record of met and missed deadlines.

The rule (engine.deadlines.deadline_state) is checked on its own; the record is checked
on the policy's own processes (processes/) driven through the API and the deadline
worker, on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import engine.instances  # noqa: F401 - the engine first (its hooks import the register)
from engine import worker
from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deadlines import (
    DUE_SOON,
    MET,
    MET_LATE,
    ON_TIME,
    OVERDUE,
    deadline_state,
    escalation_reason,
    next_record,
)
from engine.deploy import deploy_directory
from engine.models import AuditEvent, Complaint, ComplaintDeadline
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT
from engine.users import create_token, create_user
from web import create_app

from .test_web_api import PASSWORD, bearer

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=10)


# -- the rule ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("met_at", "state"), [
    (T0 + timedelta(hours=1), MET), (DUE, MET), (DUE + timedelta(seconds=1), MET_LATE)])
def test_a_met_deadline_is_met_or_met_late_whatever_the_time_now(met_at, state):
    for now in (T0, DUE + timedelta(days=30)):
        assert deadline_state(T0, DUE, met_at, now) == state


@pytest.mark.parametrize(("used", "state"), [
    (timedelta(0), ON_TIME), (timedelta(hours=7, minutes=59), ON_TIME),
    (timedelta(hours=8), DUE_SOON), (timedelta(hours=9, minutes=59), DUE_SOON),
    (timedelta(hours=10), OVERDUE), (timedelta(days=3), OVERDUE)])
def test_an_unmet_deadline_is_due_soon_from_80_percent_of_its_time_then_overdue(used, state):
    assert deadline_state(T0, DUE, None, T0 + used) == state


def test_a_deadline_set_already_passed_or_without_time_is_overdue_or_due_soon():
    assert deadline_state(DUE, DUE, None, DUE) == OVERDUE
    assert deadline_state(DUE + timedelta(hours=1), DUE, None, T0) == DUE_SOON
    assert deadline_state(None, DUE, None, DUE - timedelta(minutes=1)) == ON_TIME


def test_a_deadline_met_after_it_was_missed_keeps_both_times():
    computed = next_record(None, DUE, None, T0)
    assert (computed.state, computed.computed_at, computed.missed_at) == ("open", T0, None)
    late = DUE + timedelta(hours=2)
    missed = next_record(computed, DUE, None, late)
    assert (missed.state, missed.missed_at) == ("missed", late)
    assert next_record(missed, DUE, None, late + timedelta(hours=1)) == missed
    met = next_record(missed, DUE, late + timedelta(hours=3), late + timedelta(hours=3))
    assert (met.state, met.met_at, met.missed_at) == ("met_late", late + timedelta(hours=3),
                                                       late)


def test_a_recomputed_deadline_starts_its_record_again():
    missed = next_record(next_record(None, DUE, None, T0), DUE, None, DUE)
    later_due = DUE + timedelta(days=5)
    again = next_record(missed, later_due, None, DUE + timedelta(hours=1))
    assert (again.due_at, again.computed_at, again.missed_at, again.state) == (
        later_due, DUE + timedelta(hours=1), None, "open")


def test_the_reason_of_an_escalation_gives_the_deadline_in_london_time():
    due = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # 17:00 British Summer Time
    assert escalation_reason("acknowledge_by", due, due + timedelta(hours=1)) == \
        "Acknowledgement overdue since Wed 01 Jul 2026, 17:00"
    assert escalation_reason("ico_notify_by", due, due - timedelta(hours=1)) == \
        "ICO notification due Wed 01 Jul 2026, 17:00"


# -- the record, on the policy's processes ---------------------------------------------------

EVERYONE = Actor("root", frozenset(ROLES))
USERS = {"sam": ["staff"], "quinn": ["staff", "quality_manager"],
         "olive": ["staff", "operations_director"], "ada": ["admin"]}
INTAKE = {"channel": "email", "complainant": {"name": "Alex Morgan"},
          "summary": "Engineer missed two appointments", "description": "Nobody came.",
          "personal_data_involved": False}
#: Received Wednesday 23 December 2026 10:00: log by Thursday 24th 10:00, acknowledge by
#: Wednesday 30th 10:00 (Christmas, the weekend and Boxing Day observed are skipped).
RECEIVED = datetime(2026, 12, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def world(db_url, manual_clock, monkeypatch):
    return make_world(db_url, manual_clock, monkeypatch)


def make_world(db_url, manual_clock, monkeypatch):
    """The policy's processes deployed, users with API tokens, now = RECEIVED."""
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    db = get_engine(db_url)
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", EVERYONE)
        assert result.ok, [str(p) for p in result.problems]
        for name, roles in USERS.items():
            create_user(uow.session, name, PASSWORD, roles)
        tokens = {name: bearer(create_token(uow.session, name)) for name in USERS}
    manual_clock.set(RECEIVED)
    client = create_app({"SECRET_KEY": "test", "TESTING": True}).test_client()
    return db, client, tokens, manual_clock


def record_complaint(client, tokens, **changes) -> str:
    response = client.post("/api/v1/complaints", json={**INTAKE, **changes},
                           headers=tokens["sam"])
    assert response.status_code == 201, response.get_json()
    return response.get_json()["reference"]


def work_on(client, tokens, user: str, bpmn_id: str, data: dict) -> None:
    tasks = client.get("/api/v1/tasks", headers=tokens[user]).get_json()
    task = next(t for t in tasks if t["bpmn_id"] == bpmn_id)
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data},
                       headers=tokens[user])
    assert done.status_code == 200, done.get_json()


def fire_timers(db) -> None:
    while worker.run_once(db):
        pass


def records(db, reference: str) -> dict[str, ComplaintDeadline]:
    with unit_of_work(db, write=False) as uow:
        complaint = uow.session.scalars(
            select(Complaint).where(Complaint.reference == reference)).one()
        rows = uow.session.scalars(select(ComplaintDeadline).where(
            ComplaintDeadline.complaint_id == complaint.id)).all()
        uow.session.expunge_all()
    return {row.name: row for row in rows}


LOG = {"record_checked": True}
ACKNOWLEDGE = {"acknowledgement_channel": "email", "next_steps_explained": True,
               "sent_to_complainant_only": True}


def test_computed_deadlines_are_recorded_with_their_due_times(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    found = records(db, reference)
    assert {name: (r.due_at, r.state, r.computed_at) for name, r in found.items()} == {
        "log_by": (datetime(2026, 12, 24, 10, tzinfo=UTC), "open", RECEIVED),
        "acknowledge_by": (datetime(2026, 12, 30, 10, tzinfo=UTC), "open", RECEIVED),
    }


def test_a_met_deadline_is_recorded_with_the_actual_time(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    clock.advance(hours=3)
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    log_by = records(db, reference)["log_by"]
    assert (log_by.state, log_by.met_at, log_by.missed_at) == (
        "met", RECEIVED + timedelta(hours=3), None)


def test_a_missed_deadline_is_recorded_when_its_timer_fires_and_met_late_when_met(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    fired_at = clock.advance(days=7, hours=1)  # Wednesday 30 December, 11:00
    fire_timers(db)
    acknowledge_by = records(db, reference)["acknowledge_by"]
    assert (acknowledge_by.state, acknowledge_by.missed_at, acknowledge_by.met_at) == (
        "missed", fired_at, None)

    sent_at = clock.advance(days=1)
    work_on(client, tokens, "sam", "send_acknowledgement", ACKNOWLEDGE)
    acknowledge_by = records(db, reference)["acknowledge_by"]
    assert (acknowledge_by.state, acknowledge_by.missed_at, acknowledge_by.met_at) == (
        "met_late", fired_at, sent_at)
    with unit_of_work(db, write=False) as uow:
        events = [(e.action, e.details["deadline"]) for e in uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("deadline_%"))
            .order_by(AuditEvent.id))]
    assert events == [("deadline_met", "log_by"), ("deadline_missed", "acknowledge_by"),
                      ("deadline_met", "acknowledge_by")]


def test_a_missed_acknowledgement_reaches_the_quality_managers_inbox_with_the_reason(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    assert "deadline missed" not in client.get("/inbox", headers=tokens["quinn"]).get_data(
        as_text=True)
    clock.advance(days=7, hours=1)
    fire_timers(db)

    html = client.get("/inbox", headers=tokens["quinn"]).get_data(as_text=True)
    rows = [row for row in html.split("<tr>") if "deadline missed" in row]
    assert len(rows) == 1 and reference in rows[0]
    assert ("Acknowledgement deadline missed: get the acknowledgement sent "
            "(Acknowledgement overdue since Wed 30 Dec 2026, 10:00)") in rows[0]
    api = client.get("/api/v1/tasks", headers=tokens["quinn"]).get_json()
    assert [t["title"] for t in api if t["bpmn_id"] == "chase_overdue_acknowledgement"] == [
        "Acknowledgement deadline missed: get the acknowledgement sent "
        "(Acknowledgement overdue since Wed 30 Dec 2026, 10:00)"]
    # Staff see their own late task, not the Quality Manager's escalation.
    staff = client.get("/inbox", headers=tokens["sam"]).get_data(as_text=True)
    assert "deadline missed" not in staff
    assert re.search(r"Send the acknowledgement to the complainant.*?Overdue", staff, re.S)


def test_the_api_gives_each_deadline_with_its_state_and_actual_times(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    fired_at = clock.advance(days=1, hours=2)
    fire_timers(db)
    logged_at = clock.advance(minutes=30)
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    record = client.get(f"/api/v1/complaints/{reference}", headers=tokens["quinn"]).get_json()
    assert record["deadline_states"] == [
        {"name": "log_by", "due_at": "2026-12-24T10:00:00+00:00", "state": "met_late",
         "met_at": logged_at.isoformat(), "missed_at": fired_at.isoformat()},
        {"name": "acknowledge_by", "due_at": "2026-12-30T10:00:00+00:00", "state": "on_time",
         "met_at": None, "missed_at": None},
    ]
