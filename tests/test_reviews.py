"""The annual review run as the ``definition_review`` process (engine/reviews.py).

Policy, Review: the process owner reviews the diagrams, scenarios and last year's
figures; the Quality Manager approves or sends back; the approval record holds who
approved, when, the version and the next review date. Every review here runs through
the real engine (engine.instances.complete_task) on the policy's own diagrams, on
SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from engine import governance, reviews
from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Conflict, Forbidden
from engine.instances import complete_task
from engine.models import (
    AuditEvent,
    Complaint,
    DefinitionReview,
    HumanTask,
    ProcessGovernance,
    ProcessInstance,
)
from engine.register import record_complaint
from engine.settings import PROJECT_ROOT

from .support import seeded_database

LONDON = ZoneInfo("Europe/London")
PROCESSES = PROJECT_ROOT / "processes"
PAT = Actor("pat", frozenset({"process_owner"}))
QUINN = Actor("quinn", frozenset({"staff", "quality_manager"}))
SOFIA = Actor("sofia", frozenset({"staff", "senior_management"}))
SAM = Actor("sam", frozenset({"staff"}))
USERS = {"pat": ["process_owner"], "sam": ["staff"], "quinn": ["staff", "quality_manager"],
         "sofia": ["staff", "senior_management"]}

OWNER_REVIEW = {
    "reviewed_version": "complaint_handling v1",
    "diagrams_reviewed": True,
    "scenarios_reviewed": True,
    "figures_reviewed": True,
    "review_findings": "Acknowledgements were late twice in the year; both were chased.",
    "changes_made": "none",
}
APPROVE = {"approval_decision": "approve", "approval_comments": "Approved.",
           "approved_by": "Priya Shah (Quality Manager)"}
SEND_BACK = {"approval_decision": "send_back",
             "approval_comments": "Add the year's figures on escalations."}


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    """The policy deployed on Monday 21 December 2026 by pat: reviews due 21 Dec 2027."""
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, USERS, [PROCESSES], PAT, "first version")


def start(db, actor=PAT, process_id="complaint_handling") -> DefinitionReview:
    with unit_of_work(db) as uow:
        review = reviews.start_review(uow, process_id, actor)
        uow.session.flush()
        uow.session.expunge(review)
    return review


def ready_task(db, review: DefinitionReview) -> HumanTask:
    with unit_of_work(db, write=False) as uow:
        task = uow.session.scalars(select(HumanTask).where(
            HumanTask.instance_id == review.instance_id, HumanTask.state == "ready")).one()
        uow.session.expunge(task)
    return task


def complete(db, review, bpmn_id, data, actor):
    task = ready_task(db, review)
    assert task.bpmn_id == bpmn_id
    with unit_of_work(db) as uow:
        complete_task(uow, task.id, data, actor)


def reload(db, review) -> DefinitionReview:
    with unit_of_work(db, write=False) as uow:
        found = uow.session.get(DefinitionReview, review.id)
        uow.session.expunge(found)
    return found


def gov(db, process_id="complaint_handling") -> ProcessGovernance:
    with unit_of_work(db, write=False) as uow:
        found = uow.session.get(ProcessGovernance, process_id)
        uow.session.expunge(found)
    return found


def instance_status(db, review) -> str:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalar(select(ProcessInstance.status).where(
            ProcessInstance.id == review.instance_id))


def test_a_started_review_opens_the_owners_task_at_once_with_the_version_and_figures(
        db, manual_clock):
    manual_clock.set(datetime(2027, 11, 30, 10, 0, tzinfo=LONDON))
    review = start(db)
    task = ready_task(db, review)
    assert (task.bpmn_id, task.role) == ("review_process_definition", "process_owner")
    assert "never approved yet, first deployed on 2026-12-21" in task.instructions
    assert "Version under review: complaint_handling v1 (owner: pat)" in task.instructions
    assert "Last year's figures (2026-11 to 2027-10)" in task.instructions
    assert "2027-10: 0 received (minor 0, major 0, unclassified 0)" in task.instructions
    assert review.outcome is None
    with unit_of_work(db, write=False) as uow:
        assert uow.session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "definition_review_started")).one()


def test_an_approved_review_is_recorded_and_the_next_review_is_due_a_year_later(
        db, manual_clock):
    manual_clock.set(datetime(2027, 11, 30, 10, 0, tzinfo=LONDON))
    review = start(db)
    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    manual_clock.set(datetime(2027, 12, 2, 15, 0, tzinfo=LONDON))
    complete(db, review, "approve_process_review", APPROVE, QUINN)

    done = reload(db, review)
    assert done.outcome == "approved"
    assert done.approver == "quinn"  # the signed-in user, not only a typed name
    assert done.approver_name == "Priya Shah (Quality Manager)"
    assert done.decided_at == datetime(2027, 12, 2, 15, 0, tzinfo=LONDON)
    assert done.next_review_on == date(2028, 12, 2)
    assert done.findings == OWNER_REVIEW["review_findings"]
    assert done.rounds == 1
    assert instance_status(db, review) == "complete"
    after = gov(db)
    assert after.last_approved_at == datetime(2027, 12, 2, 15, 0, tzinfo=LONDON)
    assert after.review_due_on == date(2028, 12, 2)
    with unit_of_work(db, write=False) as uow:
        decided = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "definition_review_decided")).one()
    assert decided.details["outcome"] == "approved"
    assert decided.details["next_review_on"] == "2028-12-02"


def test_a_sent_back_review_is_recorded_and_stays_due_until_approved(db, manual_clock):
    manual_clock.set(datetime(2027, 12, 28, 9, 0, tzinfo=LONDON))  # overdue since the 21st
    review = start(db)
    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    complete(db, review, "approve_process_review", SEND_BACK, QUINN)

    back = reload(db, review)
    assert (back.outcome, back.approver, back.rounds) == ("sent_back", "quinn", 1)
    assert back.notes == SEND_BACK["approval_comments"]
    assert back.next_review_on is None
    assert gov(db).review_due_on == date(2027, 12, 21)
    assert governance.review_state(gov(db).review_due_on) == governance.OVERDUE
    assert ready_task(db, review).bpmn_id == "review_process_definition"
    with unit_of_work(db) as uow:
        assert reviews.open_review(uow.session, "complaint_handling").id == review.id

    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    complete(db, review, "approve_process_review", APPROVE, QUINN)
    done = reload(db, review)
    assert (done.outcome, done.rounds, done.next_review_on) == (
        "approved", 2, date(2028, 12, 28))
    assert gov(db).review_due_on == date(2028, 12, 28)


def test_the_next_review_follows_the_configured_interval(db, manual_clock):
    with unit_of_work(db) as uow:
        governance.set_governance(uow.session, "complaint_handling", "pat", "6", QUINN)
    manual_clock.set(datetime(2027, 6, 1, 9, 0, tzinfo=LONDON))
    review = start(db, QUINN)
    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    complete(db, review, "approve_process_review", APPROVE, QUINN)
    assert reload(db, review).next_review_on == date(2027, 12, 1)
    assert gov(db).review_due_on == date(2027, 12, 1)


def test_senior_management_rejecting_a_disputed_review_leaves_it_due(db, manual_clock):
    review = start(db)
    for _ in range(3):
        complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
        complete(db, review, "approve_process_review", SEND_BACK, QUINN)
    complete(db, review, "decide_disputed_review",
             {"senior_management_review_decision": "reject",
              "senior_management_review_reason": "The owner and the QM must agree first."},
             SOFIA)
    done = reload(db, review)
    assert (done.outcome, done.approver, done.rounds) == ("rejected", "sofia", 3)
    assert gov(db).last_approved_at is None
    assert gov(db).review_due_on == date(2027, 12, 21)
    start(db)  # a new review may start


def test_senior_management_approving_a_disputed_review_is_the_approval_record(
        db, manual_clock):
    review = start(db)
    for _ in range(3):
        complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
        complete(db, review, "approve_process_review", SEND_BACK, QUINN)
    complete(db, review, "decide_disputed_review",
             {"senior_management_review_decision": "approve",
              "senior_management_review_reason": "The definition meets the policy as it is.",
              "approved_by": "Liam Farncombe (Chief Executive)"}, SOFIA)
    done = reload(db, review)
    assert (done.outcome, done.approver, done.approver_name) == (
        "approved", "sofia", "Liam Farncombe (Chief Executive)")
    assert done.notes == "The definition meets the policy as it is."
    assert done.next_review_on == date(2027, 12, 21)
    assert gov(db).review_due_on == date(2027, 12, 21)


def test_one_review_of_a_process_at_a_time(db):
    start(db)
    with pytest.raises(Conflict, match="already under way"):
        start(db, QUINN)
    start(db, process_id="acknowledgement")  # another process may be reviewed meanwhile


def test_staff_may_not_start_a_review(db):
    with pytest.raises(Forbidden):
        start(db, SAM)
    with unit_of_work(db, write=False) as uow:
        assert uow.session.scalars(select(DefinitionReview)).all() == []


def test_complaint_figures_count_each_month_by_classification_and_missed_deadlines(
        db, manual_clock):
    manual_clock.set(datetime(2027, 1, 15, 12, 0, tzinfo=LONDON))
    for received in ("2026-11-03T10:00:00+00:00", "2026-11-20T10:00:00+00:00",
                     "2026-12-29T10:00:00+00:00", "2027-01-05T10:00:00+00:00"):
        with unit_of_work(db) as uow:
            record_complaint(uow, {"channel": "letter", "received_at": received,
                                   "complainant": {"name": "Ann"}, "summary": "s",
                                   "description": "d"}, SAM)
    with unit_of_work(db) as uow:
        first = uow.session.scalars(select(Complaint).order_by(Complaint.id)).first()
        uow.session.execute(update(Complaint).where(Complaint.id == first.id).values(
            classification="major"))
        figures = reviews.last_year_figures(uow.session, "complaint_handling")
        sub = reviews.last_year_figures(uow.session, "acknowledgement")
    assert figures["kind"] == "complaints" and sub["kind"] == "complaints"
    assert figures["period"] == "2026-01 to 2026-12"  # the whole months before January
    months = {m["month"]: m for m in figures["months"]}
    assert len(months) == 12
    assert months["2026-11"]["received"] == 2
    assert months["2026-11"]["major"] == 1
    assert months["2026-11"]["unclassified"] == 1
    assert months["2026-11"]["logged_late"] == 2  # never logged, long past log_by
    assert months["2026-12"]["received"] == 1
    assert figures["totals"]["received"] == 3  # January 2027 is not a whole month yet
    assert figures["lines"][-1].startswith("Total: 3 received")


def test_figures_of_other_processes_count_their_instances(db, manual_clock):
    manual_clock.set(datetime(2027, 2, 10, 9, 0, tzinfo=LONDON))
    first = start(db)  # a definition_review instance, still running
    complete(db, first, "review_process_definition", OWNER_REVIEW, PAT)
    manual_clock.set(datetime(2027, 3, 10, 9, 0, tzinfo=LONDON))
    with unit_of_work(db) as uow:
        figures = reviews.last_year_figures(uow.session, "definition_review")
    assert figures["kind"] == "instances"
    months = {m["month"]: m for m in figures["months"]}
    assert months["2027-02"] == {"month": "2027-02", "started": 1, "completed": 0,
                                 "in_error": 0, "running": 1}


def test_a_review_cannot_start_where_the_review_process_is_not_deployed(sqlite_url,
                                                                         manual_clock):
    from .conftest import FIXTURES

    engine = get_engine(sqlite_url)
    with unit_of_work(engine) as uow:
        assert deploy_directory(uow.session, FIXTURES / "register", PAT).ok
    with unit_of_work(engine) as uow:
        with pytest.raises(Conflict, match="definition_review is not deployed"):
            reviews.start_review(uow, "complaint_handling", QUINN)


def test_the_approval_names_the_version_current_when_approved(db, manual_clock, tmp_path):
    import shutil

    review = start(db)
    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    target = tmp_path / "processes"
    shutil.copytree(PROCESSES, target)
    shutil.copytree(PROJECT_ROOT / "forms", tmp_path / "forms")
    bpmn = target / "complaint_handling.bpmn"
    bpmn.write_text(bpmn.read_text() + "\n<!-- changed during the review -->\n")
    with unit_of_work(db) as uow:
        assert deploy_directory(uow.session, target, PAT, "Changed in the review").ok
    complete(db, review, "approve_process_review", APPROVE, QUINN)
    with unit_of_work(db, write=False) as uow:
        [(done, version)] = reviews.reviews_of(uow.session, "complaint_handling")
    assert (done.outcome, version) == ("approved", 2)


def started_reviews(db) -> list[tuple[str, str | None]]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.execute(
            select(DefinitionReview.process_id, DefinitionReview.started_by)
            .order_by(DefinitionReview.process_id)).all())


def test_the_worker_starts_each_review_when_it_falls_due_and_only_once(db, manual_clock):
    from engine import worker

    # Deployed Mon 21 Dec 2026: due 21 Dec 2027, "due" from 30 days before.
    manual_clock.set(datetime(2027, 11, 20, 10, 0, tzinfo=LONDON))
    assert reviews.start_due_reviews(db) == []
    manual_clock.set(datetime(2027, 11, 22, 10, 0, tzinfo=LONDON))
    worker.deliver_mail(db)  # the worker's round of routine jobs
    deployed = sorted(p.stem for p in PROCESSES.glob("*.bpmn"))
    assert [pid for pid, _ in started_reviews(db)] == deployed
    assert {by for _, by in started_reviews(db)} == {"system"}
    assert reviews.start_due_reviews(db) == []  # under way: not started twice
    review = next(r for r in all_reviews(db) if r.process_id == "complaint_handling")
    assert ready_task(db, review).bpmn_id == "review_process_definition"


def test_a_review_approved_is_not_started_again_until_the_next_year(db, manual_clock):
    manual_clock.set(datetime(2027, 11, 30, 10, 0, tzinfo=LONDON))
    review = start(db)
    complete(db, review, "review_process_definition", OWNER_REVIEW, PAT)
    complete(db, review, "approve_process_review", APPROVE, QUINN)
    assert "complaint_handling" not in reviews.start_due_reviews(db)
    manual_clock.set(datetime(2028, 11, 30, 10, 0, tzinfo=LONDON))
    assert "complaint_handling" in reviews.start_due_reviews(db)


def all_reviews(db) -> list[DefinitionReview]:
    with unit_of_work(db, write=False) as uow:
        found = uow.session.scalars(select(DefinitionReview)).all()
        for row in found:
            uow.session.expunge(row)
    return found
