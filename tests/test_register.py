"""The Complaints Register: recording, references, and the row following the case.

Every test with a database runs on SQLite and (when configured) on PostgreSQL. The
process is tests/fixtures/register (process id ``complaint_handling``): its forms and
scripts set owner, personal data, breach, classification, status and the instants.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, func, inspect, select

from engine import instances, migrate, register, runtime
from engine.audit import SYSTEM, Actor
from engine.case_data import case_data, completed_in_order
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Forbidden, InvalidData, NotFound
from engine.models import AuditEvent, Base, Complaint, ComplaintReferenceCounter, HumanTask
from engine.roles import ROLES

from .conftest import FIXTURES

STAFF = Actor("sam", frozenset({"staff"}))
OWNER = Actor("owen", frozenset({"staff", "complaint_owner"}))
EVERYONE = Actor("root", frozenset(ROLES))
AUDITOR = Actor("aud", frozenset({"auditor"}))


def intake(**changes):
    data = {
        "channel": "email",
        "complainant": {"name": "Ann Example", "email": "ann@example.org"},
        "summary": "Parcel arrived broken",
        "description": "The parcel was crushed and the vase inside broken.",
    }
    data.update(changes)
    return data


def deploy(db, directory=FIXTURES / "register"):
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, directory, EVERYONE)
    assert result.ok, [str(p) for p in result.problems]


@pytest.fixture
def deployed(db):
    deploy(db)
    return db


def record(db, actor=STAFF, **changes) -> Complaint:
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, intake(**changes), actor)


def row(db, reference) -> Complaint:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(Complaint).where(Complaint.reference == reference)).one()


def complete(db, complaint, bpmn_id, data=None, actor=EVERYONE):
    with unit_of_work(db, write=False) as uow:
        task = uow.session.scalars(select(HumanTask).where(
            HumanTask.instance_id == complaint.instance_id, HumanTask.state == "ready",
            HumanTask.bpmn_id == bpmn_id)).one()
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, data or {}, actor)
    return row(db, complaint.reference)


def invalid_fields(db, data) -> dict[str, list[str]]:
    with pytest.raises(InvalidData) as caught, unit_of_work(db) as uow:
        register.record_complaint(uow, data, STAFF)
    return caught.value.fields


def counted(db):
    with unit_of_work(db, write=False) as uow:
        return (uow.session.scalar(select(func.count()).select_from(Complaint)),
                uow.session.scalar(select(func.count()).select_from(ComplaintReferenceCounter)))


class Statements:
    """The SQL statements run on an engine while the block runs."""

    def __init__(self, db):
        self.db = db
        self.seen: list[str] = []

    def _listen(self, conn, cursor, statement, *args):
        self.seen.append(" ".join(statement.split()))

    def __enter__(self):
        event.listen(self.db, "before_cursor_execute", self._listen)
        return self

    def __exit__(self, *exc):
        event.remove(self.db, "before_cursor_execute", self._listen)

    def updates_of(self, table: str) -> list[str]:
        return [s for s in self.seen if s.upper().startswith(f"UPDATE {table.upper()} ")]


# -- recording ------------------------------------------------------------------------------

def test_recording_writes_the_register_row_and_starts_the_process(deployed, manual_clock):
    complaint = record(deployed, product_or_service="Vases", remedy_sought="A refund",
                       complainant={"name": "  Ann Example ", "phone": "01632 960000"})

    assert complaint.reference == "CMP-2026-000001"
    assert complaint.channel == "email"
    assert complaint.received_at == manual_clock.now()
    assert (complaint.complainant_name, complaint.complainant_phone,
            complaint.complainant_email) == ("Ann Example", "01632 960000", None)
    assert (complaint.product_or_service, complaint.remedy_sought) == ("Vases", "A refund")
    assert complaint.status == "received"
    assert complaint.need_to_know is False
    # Monday 21 December 2026, 14:30 London: 1 and 3 business days later.
    assert complaint.deadlines == {"log_by": "2026-12-22T14:30:00+00:00",
                                   "acknowledge_by": "2026-12-24T14:30:00+00:00"}
    with unit_of_work(deployed, write=False) as uow:
        task = uow.session.scalars(
            select(HumanTask).where(HumanTask.instance_id == complaint.instance_id)).one()
        events = uow.session.scalars(
            select(AuditEvent).where(AuditEvent.instance_id == complaint.instance_id)
            .order_by(AuditEvent.id)).all()
    assert (task.bpmn_id, task.due_at) == ("log", datetime(2026, 12, 22, 14, 30, tzinfo=UTC))
    recorded = next(e for e in events if e.action == "complaint_recorded")
    assert recorded.actor == "sam"
    assert recorded.details == {"reference": "CMP-2026-000001", "channel": "email",
                                "received_at": "2026-12-21T14:30:00+00:00"}
    assert "instance_started" in [e.action for e in events]


def test_the_process_starts_with_the_intake_in_register_names(deployed, manual_clock):
    complaint = record(deployed, received_at="2026-12-21T09:15:30.250+00:00",
                       personal_data_involved=True)
    with unit_of_work(deployed, write=False) as uow:
        ref = instances._lock_instance(uow.connection, complaint.instance_id)
        workflow, _ = instances._workflow_for(uow, ref)
    data = case_data(workflow)
    assert {k: data[k] for k in ("reference", "status", "channel", "received_at", "complainant",
                                 "summary", "personal_data_involved")} == {
        "reference": "CMP-2026-000001",
        "status": "received",
        "channel": "email",
        "received_at": "2026-12-21T09:15:30+00:00",
        "complainant": {"name": "Ann Example", "email": "ann@example.org", "phone": None,
                        "postal_address": None},
        "summary": "Parcel arrived broken",
        "personal_data_involved": True,
    }
    assert row(deployed, complaint.reference).need_to_know is True


def test_received_at_may_be_in_the_past(deployed, manual_clock):
    complaint = record(deployed, received_at="2026-12-18T16:00:00Z")
    assert complaint.received_at == datetime(2026, 12, 18, 16, 0, tzinfo=UTC)
    assert complaint.deadlines["log_by"] == "2026-12-21T16:00:00+00:00"


@pytest.mark.parametrize(("received_at", "message"), [
    ("2026-12-21T14:30:01+00:00", "received_at is in the future"),
    ("2027-01-01T00:00:00+00:00", "received_at is in the future"),
    ("yesterday", "not an ISO-8601 date and time"),
    ("2026-13-01T10:00:00+00:00", "not an ISO-8601 date and time"),
    ("2026-12-21T10:00:00", "give the time zone"),
    (1766310000, "as ISO-8601 text"),
])
def test_received_at_must_be_an_instant_with_a_zone_not_in_the_future(
        deployed, manual_clock, received_at, message):
    fields = invalid_fields(deployed, intake(received_at=received_at))
    assert list(fields) == ["received_at"]
    assert message in fields["received_at"][0]
    assert counted(deployed) == (0, 0)


def test_required_fields_and_unknown_fields_are_reported_by_name(deployed, manual_clock):
    fields = invalid_fields(deployed, {"status": "closed", "complainant": {"email": "x"}})
    assert fields == {
        "channel": ["this field is required"],
        "summary": ["this field is required"],
        "description": ["this field is required"],
        "complainant.name": ["this field is required"],
        "complainant.email": ["not a valid email address"],
        "status": ["Unknown field."],
    }
    fields = invalid_fields(deployed, intake(channel="fax", summary="  ", complainant=None,
                                             description="x" * 20_001))
    assert set(fields) == {"channel", "summary", "complainant", "description"}
    assert fields["channel"] == ["must be one of: email, telephone, letter, in_person, website"]
    assert invalid_fields(deployed, intake(summary="s" * 201)) == {
        "summary": ["at most 200 characters"]}
    assert invalid_fields(deployed, ["not", "an", "object"]) == {}
    assert counted(deployed) == (0, 0)


def test_recording_needs_the_staff_role(deployed, manual_clock):
    with pytest.raises(Forbidden), unit_of_work(deployed) as uow:
        register.record_complaint(uow, intake(), AUDITOR)


def test_recording_without_the_process_deployed_leaves_nothing(db, manual_clock):
    with pytest.raises(NotFound, match="complaint_handling"), unit_of_work(db) as uow:
        register.record_complaint(uow, intake(), STAFF)
    assert counted(db) == (0, 0)


# -- references -----------------------------------------------------------------------------

def test_references_count_per_year_of_receipt_in_london(deployed, manual_clock):
    first = record(deployed)
    second = record(deployed, received_at="2026-03-01T10:00:00+00:00")
    # 00:30 on 1 January 2026 at +01:00 is 23:30 on 31 December 2025 in London.
    last_year = record(deployed, received_at="2026-01-01T00:30:00+01:00")
    assert [first.reference, second.reference, last_year.reference] == [
        "CMP-2026-000001", "CMP-2026-000002", "CMP-2025-000001"]


@pytest.mark.parametrize("threads", [2])
def test_concurrent_recordings_get_distinct_consecutive_references(deployed, manual_clock,
                                                                   threads):
    per_thread = 3
    barrier = threading.Barrier(threads)
    references: list[str] = []
    errors: list[BaseException] = []

    def work():
        try:
            barrier.wait()
            for _ in range(per_thread):
                references.append(record(deployed).reference)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors
    assert sorted(references) == [f"CMP-2026-{n:06d}" for n in range(1, threads * per_thread + 1)]


def test_two_transactions_taking_references_at_once_never_share_one(deployed, manual_clock):
    """The counter itself, with both transactions open at the same time."""
    barrier = threading.Barrier(2)
    taken: list[str] = []
    errors: list[BaseException] = []
    received = manual_clock.now()

    def take():
        try:
            barrier.wait()
            with unit_of_work(deployed) as uow:
                taken.append(register.next_reference(uow.connection, received))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=take) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors
    assert sorted(taken) == ["CMP-2026-000001", "CMP-2026-000002"]


def test_a_recording_that_rolls_back_gives_its_number_back(deployed, manual_clock):
    with pytest.raises(RuntimeError), unit_of_work(deployed) as uow:
        register.record_complaint(uow, intake(), STAFF)
        raise RuntimeError("the caller failed after recording")
    assert record(deployed).reference == "CMP-2026-000001"


# -- the register follows the case ---------------------------------------------------------

def test_the_register_follows_the_case_after_every_step(deployed, manual_clock):
    complaint = record(deployed)

    manual_clock.advance(hours=1)
    logged = complete(deployed, complaint, "log", {"owner": "owen",
                                                   "personal_data_involved": False,
                                                   "summary": "Vase broken in transit"})
    assert (logged.status, logged.owner, logged.summary) == ("logged", "owen",
                                                            "Vase broken in transit")
    assert logged.logged_at == datetime(2026, 12, 21, 15, 30, tzinfo=UTC)
    assert (logged.personal_data_involved, logged.need_to_know) == (False, False)
    assert logged.updated_at == manual_clock.now()

    classified = complete(deployed, complaint, "classify", {"classification": "major"})
    assert (classified.status, classified.classification) == ("investigating", "major")

    manual_clock.advance(days=2)
    resolved = complete(deployed, complaint, "resolve",
                        {"root_cause": "Packing", "corrective_action": "Double boxes",
                         "resolution_summary": "Refunded"}, actor=OWNER)
    assert (resolved.status, resolved.root_cause, resolved.corrective_action,
            resolved.resolution_summary) == ("resolved", "Packing", "Double boxes", "Refunded")
    assert resolved.resolved_at == manual_clock.now()

    closed = complete(deployed, complaint, "close")
    assert closed.status == "closed"
    assert closed.closed_at == manual_clock.now()
    assert closed.reference == complaint.reference
    assert closed.received_at == complaint.received_at
    with unit_of_work(deployed, write=False) as uow:
        assert instances._lock_instance(uow.connection, complaint.instance_id).status == \
            instances.COMPLETE


def test_personal_data_makes_the_case_need_to_know_and_a_breach_adds_the_ico_deadline(
        deployed, manual_clock):
    complaint = record(deployed)
    logged = complete(deployed, complaint, "log", {"owner": "owen",
                                                   "personal_data_involved": True})
    assert (logged.personal_data_involved, logged.need_to_know) == (True, True)
    assessed = complete(deployed, complaint, "assess", {"data_breach": True})
    assert assessed.data_breach is True
    assert assessed.deadlines == {"log_by": "2026-12-22T14:30:00+00:00",
                                  "acknowledge_by": "2026-12-24T14:30:00+00:00",
                                  "ico_notify_by": "2026-12-24T14:30:00+00:00"}


def test_the_register_follows_the_case_after_a_cold_load(deployed, manual_clock):
    complaint = record(deployed)
    runtime.clear_caches()  # another worker process, or a restart
    logged = complete(deployed, complaint, "log", {"owner": "owen",
                                                   "personal_data_involved": False})
    assert (logged.status, logged.owner) == ("logged", "owen")


def test_a_step_that_changes_no_register_field_writes_nothing(deployed, manual_clock):
    complaint = record(deployed)
    complete(deployed, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    with Statements(deployed) as statements:
        with unit_of_work(deployed) as uow:
            instances.fire_due_timers(uow, complaint.instance_id, SYSTEM)
    assert statements.updates_of("process_instances")  # the step did run
    assert statements.updates_of("complaints") == []


def test_other_processes_leave_the_register_alone(deployed, manual_clock):
    deploy(deployed, FIXTURES / "engine")
    with Statements(deployed) as statements:
        with unit_of_work(deployed) as uow:
            ref = instances.start_instance(
                uow, "complaint_like", {"received_at": "2026-12-21T14:30:00+00:00",
                                        "owner": "owen", "status": "received"}, STAFF)
    assert ref.status == instances.RUNNING
    assert not [s for s in statements.seen if "complaints" in s.lower()]


def test_a_complaint_process_started_without_recording_has_no_register_row(deployed,
                                                                           manual_clock):
    with unit_of_work(deployed) as uow:
        instances.start_instance(uow, register.COMPLAINT_PROCESS_ID, intake(
            received_at="2026-12-21T14:30:00+00:00", reference="CMP-TEST"), STAFF)
    assert counted(deployed) == (0, 0)


def test_the_register_takes_only_values_of_the_right_type():
    values, problems = register.register_values({
        "classification": 5,
        "received_at": "not a date",
        "logged_at": "2026-12-21T15:00:00+01:00",
        "closed_at": None,
        "status": None,
        "owner": "",
        "summary": "Fine",
        "data_breach": "yes",
        "complainant": {"name": "", "email": "a@example.org"},
        "deadlines": {"log_by": "2026-12-22T14:30:00Z", "bad": "soon"},
        "unrelated": "ignored",
    })
    assert values == {
        "logged_at": datetime(2026, 12, 21, 14, 0, tzinfo=UTC),
        "closed_at": None,
        "owner": None,
        "summary": "Fine",
        "complainant_email": "a@example.org",
        "deadlines": {"log_by": "2026-12-22T14:30:00+00:00"},
        "need_to_know": False,
    }
    assert problems == {
        "classification": "not text of at most 40 characters",
        "received_at": "not an ISO-8601 instant with a zone",
        "status": "cannot be emptied",
        "data_breach": "not true or false",
        "complainant.name": "cannot be emptied",
        "deadlines.bad": "not an ISO-8601 instant with a zone",
    }


@pytest.mark.parametrize(("data", "need_to_know"), [
    ({"personal_data_involved": True}, True),
    ({"personal_data_involved": False, "data_breach": True}, True),
    ({"need_to_know": True, "personal_data_involved": False}, True),
    ({"personal_data_involved": False, "data_breach": False}, False),
    ({"personal_data_involved": None}, False),
    ({"summary": "no need-to-know field at all"}, None),
])
def test_need_to_know_follows_personal_data_breach_or_an_explicit_flag(data, need_to_know):
    values, _ = register.register_values(data)
    assert values.get("need_to_know") is need_to_know


def test_an_ignored_value_is_audited_and_does_not_stop_the_case(deployed, manual_clock):
    complaint = record(deployed)
    runtime.clear_caches()  # a workflow freshly loaded: nothing known about its row
    with unit_of_work(deployed) as uow:
        ref = instances._lock_instance(uow.connection, complaint.instance_id)
        workflow, _ = instances._workflow_for(uow, ref)
        completed_in_order(workflow)[-1].data["classification"] = "x" * 41
        audit = instances.AuditBatch(SYSTEM, complaint.instance_id)
        register.sync_register(uow.connection, ref, workflow, SYSTEM, audit)
        audit.write(uow.connection)
    with unit_of_work(deployed, write=False) as uow:
        ignored = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "register_field_ignored")).one()
    assert ignored.details == {"field": "classification",
                               "problem": "not text of at most 40 characters"}
    assert row(deployed, complaint.reference).classification is None


def test_the_reference_year_is_the_year_of_receipt_in_the_company_zone(monkeypatch):
    new_year_utc = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert register.reference_year(new_year_utc) == 2026
    monkeypatch.setenv("COMPLAINTS_TIMEZONE", "Asia/Tokyo")
    assert register.reference_year(new_year_utc) == 2027
    assert register.reference_year(new_year_utc - timedelta(hours=9)) == 2026


# -- the migration --------------------------------------------------------------------------

def test_the_migrations_create_exactly_the_models(db):
    with db.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_the_register_migration_goes_down_and_up_again(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0001")
    assert not {"complaints", "complaint_reference_counters"} & set(
        inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert {"complaints", "complaint_reference_counters"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()
