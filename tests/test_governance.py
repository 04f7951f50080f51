"""Owners and review due dates of process definitions (engine/governance.py).

Policy, Review: reviewed at least annually. Every test runs on SQLite and (when
configured) PostgreSQL; the clock starts on Monday 21 December 2026, 14:30 London.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from engine import governance
from engine.audit import Actor
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Forbidden, InvalidData
from engine.models import AuditEvent, ProcessGovernance
from engine.settings import PROJECT_ROOT

from .support import seeded_database

LONDON = ZoneInfo("Europe/London")
PROCESSES = PROJECT_ROOT / "processes"
PAT = Actor("pat", frozenset({"process_owner"}))
ADA = Actor("ada", frozenset({"admin"}))
QUINN = Actor("quinn", frozenset({"staff", "quality_manager"}))
USERS = {"pat": ["process_owner"], "pia": ["process_owner"], "sam": ["staff"],
         "ada": ["admin"], "quinn": ["staff", "quality_manager"]}


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, USERS, [PROCESSES], PAT, "first version")


def row(db, process_id="complaint_handling") -> ProcessGovernance:
    with unit_of_work(db, write=False) as uow:
        found = uow.session.get(ProcessGovernance, process_id)
        uow.session.expunge_all()
        return found


def test_first_deploy_makes_every_process_due_for_review_one_year_later(db):
    with unit_of_work(db, write=False) as uow:
        rows = uow.session.scalars(select(ProcessGovernance)).all()
    assert {r.process_id for r in rows} >= {"complaint_handling", "acknowledgement",
                                            "definition_review"}
    for r in rows:
        assert r.review_due_on == date(2027, 12, 21)
        assert r.review_interval_months == 12
        assert r.last_approved_at is None
        assert r.owner == "pat"  # the deployer holds the process_owner role


def test_a_new_version_keeps_the_review_due_date(db, manual_clock, tmp_path):
    manual_clock.advance(days=40)
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, PROCESSES, ADA)
    assert result.ok
    assert row(db).review_due_on == date(2027, 12, 21)


def test_processes_deployed_before_governance_get_a_row_from_their_first_deployment(
        db, manual_clock):
    with unit_of_work(db) as uow:
        uow.session.execute(delete(ProcessGovernance))
    manual_clock.advance(days=100)
    with unit_of_work(db) as uow:
        made = governance.ensure_all(uow.session, ADA)
    assert "complaint_handling" in made
    found = row(db)
    assert found.review_due_on == date(2027, 12, 21)
    assert found.owner is None  # the admin is not a process owner: set it on the page


def test_changing_the_interval_moves_the_due_date_and_is_audited(db):
    with unit_of_work(db) as uow:
        governance.set_governance(uow.session, "complaint_handling", "pia", "6", QUINN)
    found = row(db)
    assert (found.owner, found.review_interval_months, found.review_due_on) == (
        "pia", 6, date(2027, 6, 21))
    with unit_of_work(db, write=False) as uow:
        event = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "governance_changed")).one()
    assert event.actor == "quinn"
    assert event.details["before"]["owner"] == "pat"
    assert event.details["after"] == {"owner": "pia", "review_interval_months": 6,
                                      "review_due_on": "2027-06-21"}


def test_the_due_date_follows_the_last_approval(db):
    with unit_of_work(db) as uow:
        gov = uow.session.get(ProcessGovernance, "complaint_handling")
        gov.last_approved_at = datetime(2027, 1, 31, 10, 0, tzinfo=LONDON)
        governance.set_governance(uow.session, "complaint_handling", "pat", 1, ADA)
    assert row(db).review_due_on == date(2027, 2, 28)  # clipped to the month's end


@pytest.mark.parametrize("interval", ["13", "0", "twelve", "", "-1", "1.5"])
def test_an_interval_beyond_a_year_or_not_a_whole_number_is_refused(db, interval):
    with unit_of_work(db) as uow:
        with pytest.raises(InvalidData) as error:
            governance.set_governance(uow.session, "complaint_handling", "pat", interval, ADA)
    assert "review_interval_months" in error.value.fields
    assert "at least annually" in error.value.fields["review_interval_months"][0]
    assert row(db).review_interval_months == 12


@pytest.mark.parametrize("owner, message", [("sam", "does not hold the process_owner role"),
                                            ("ghost", "there is no user")])
def test_the_owner_must_be_a_process_owner(db, owner, message):
    with unit_of_work(db) as uow:
        with pytest.raises(InvalidData) as error:
            governance.set_governance(uow.session, "complaint_handling", owner, "6", ADA)
    assert message in error.value.fields["owner"][0]
    found = row(db)
    assert (found.owner, found.review_interval_months) == ("pat", 12)


def test_only_an_admin_or_the_quality_manager_changes_governance(db):
    with unit_of_work(db) as uow:
        with pytest.raises(Forbidden):
            governance.set_governance(uow.session, "complaint_handling", "pat", "6", PAT)
    assert row(db).review_interval_months == 12


def test_review_states_due_within_thirty_days_and_overdue_after_the_day():
    today = date(2026, 12, 21)
    assert governance.review_state(date(2026, 12, 20), today) == governance.OVERDUE
    assert governance.review_state(date(2026, 12, 21), today) == governance.DUE
    assert governance.review_state(date(2027, 1, 20), today) == governance.DUE
    assert governance.review_state(date(2027, 1, 21), today) == governance.NOT_DUE
    assert governance.review_state(None, today) == governance.NOT_DUE


def test_the_summaries_list_each_process_with_its_current_version(db):
    with unit_of_work(db, write=False) as uow:
        summaries = {s.process_id: s for s in governance.process_summaries(uow.session)}
    ch = summaries["complaint_handling"]
    assert (ch.version, ch.owner, ch.review_due_on, ch.running) == (
        1, "pat", date(2027, 12, 21), 0)
    assert ch.review_state == governance.NOT_DUE


def test_db_upgrade_gives_processes_deployed_before_governance_their_row(db, capsys):
    from engine.cli import main

    with unit_of_work(db) as uow:
        uow.session.execute(delete(ProcessGovernance))
    assert main(["db", "upgrade"]) == 0
    found = row(db)
    assert found.review_due_on == date(2027, 12, 21)
    assert found.owner is None  # the command line is not a user: the owner is set on the page
