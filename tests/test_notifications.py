"""Staff notifications: "a task for you" when a task is assigned to someone by name, and
one digest per user and day of their overdue and due-soon tasks (not a storm).

Runs on SQLite and (when configured) PostgreSQL; the SMTP server is aiosmtpd on loopback.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import instances, notifications, outbox, register, runtime
from engine.audit import SYSTEM, Actor
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.models import HumanTask, OutboxMessage
from engine.roles import ROLES
from engine.users import create_user

from .conftest import FIXTURES, LONDON
from .mail_server import mail_server_fixture  # noqa: F401 - a fixture

EVERYONE = Actor("root", frozenset(ROLES))
USERS = {  # username: (roles, e-mail address)
    "sam": (["staff"], "sam@example.com"),
    "owen": (["staff", "complaint_owner"], "owen@example.com"),
    "olga": (["staff", "complaint_owner"], None),
    "quinn": (["staff", "quality_manager"], "quinn@example.com"),
    "quentin": (["staff", "quality_manager"], "quentin@example.com"),
    "qora": (["staff", "quality_manager"], None),
    "isla": (["staff", "information_security_officer"], "isla@example.com"),
}


def actor(username):
    return Actor(username, frozenset(USERS[username][0]))


@pytest.fixture
def db(db, tmp_path):
    """The register test process, with due times on the Complaint Owner's and the Quality
    Manager's tasks."""
    process = tmp_path / "process"
    shutil.copytree(FIXTURES / "register", process)
    bpmn = process / "complaint_handling.bpmn"
    text = bpmn.read_text()
    for form in ("resolve.json", "classify.json"):  # the owner's and the QM's tasks
        marker = f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}"/>'
        assert marker in text
        text = text.replace(marker, marker + '<spiffworkflow:property name="dueAt" '
                            'value="deadlines[&quot;acknowledge_by&quot;]"/>')
    bpmn.write_text(text)
    with unit_of_work(db) as uow:
        for username, (roles, email) in USERS.items():
            create_user(uow.session, username, "correct horse battery", roles, email=email)
        result = deploy_directory(uow.session, process, EVERYONE)
    assert result.ok, [str(p) for p in result.problems]
    return db


def record(db, email=None):
    complainant = {"name": "Ann Example", "email": email} if email else {"name": "Ann Example"}
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, {
            "channel": "telephone", "complainant": complainant,
            "summary": "Parcel arrived broken", "description": "SECRET DESCRIPTION"},
            actor("sam"))


def task_of(db, complaint, bpmn_id) -> HumanTask:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(select(HumanTask).where(
            HumanTask.instance_id == complaint.instance_id, HumanTask.state == "ready",
            HumanTask.bpmn_id == bpmn_id)).one()


def complete(db, complaint, bpmn_id, data):
    task = task_of(db, complaint, bpmn_id)
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, data, EVERYONE)


def owned(db, owner="owen"):
    """A complaint whose "Resolve" task is assigned to ``owner``."""
    complaint = record(db)
    complete(db, complaint, "log", {"owner": owner, "personal_data_involved": False})
    complete(db, complaint, "classify", {"classification": "minor"})
    return complaint


def mail_of(db, kind) -> list[OutboxMessage]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == kind).order_by(OutboxMessage.recipient, OutboxMessage.id)))


# -- "a task for you" ---------------------------------------------------------------------------

def test_a_task_assigned_to_a_named_user_mails_them_once(db, manual_clock):
    complaint = owned(db)
    resolve = task_of(db, complaint, "resolve")
    [message] = mail_of(db, "task_assigned")
    assert (message.recipient, message.to_address) == ("owen", "owen@example.com")
    assert message.instance_id == complaint.instance_id
    assert "Resolve" in message.subject and complaint.reference in message.subject
    due = resolve.due_at.astimezone(LONDON).strftime("%a %d %b %Y, %H:%M")
    assert f"Due {due}" in message.body
    assert "SECRET" not in message.body and "Ann" not in message.body

    runtime.clear_caches()  # a later step on a cold workflow does not tell them again
    with unit_of_work(db) as uow:
        instances.fire_due_timers(uow, complaint.instance_id, SYSTEM)
    assert len(mail_of(db, "task_assigned")) == 1


def test_tasks_offered_to_all_staff_mail_nobody(db, manual_clock):
    complaint = record(db)
    log = task_of(db, complaint, "log")
    assert (log.role, log.assignee) == ("staff", None)
    assert mail_of(db, "task_assigned") == [] and mail_of(db, "task_offered") == []


def test_a_task_offered_to_the_quality_manager_mails_each_holder_with_an_address(
        db, manual_clock):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    classify = task_of(db, complaint, "classify")
    assert (classify.role, classify.assignee) == ("quality_manager", None)
    messages = mail_of(db, "task_offered")
    assert [(m.recipient, m.to_address) for m in messages] == [
        ("quentin", "quentin@example.com"), ("quinn", "quinn@example.com")]  # not qora
    for message in messages:
        assert message.instance_id == complaint.instance_id
        assert message.subject.startswith("A task for the Quality Manager: ")
        assert complaint.reference in message.subject and classify.title in message.body
        assert "SECRET" not in message.body and "Ann" not in message.body
    assert mail_of(db, "task_assigned") == []

    runtime.clear_caches()  # a later step on a cold workflow does not tell them again
    with unit_of_work(db) as uow:
        instances.fire_due_timers(uow, complaint.instance_id, SYSTEM)
    assert len(mail_of(db, "task_offered")) == 2


def test_the_role_holder_whose_step_offered_the_task_is_not_mailed(db, manual_clock):
    complaint = record(db)
    task = task_of(db, complaint, "log")
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, {"owner": "owen", "personal_data_involved": False},
                                Actor("quinn", frozenset({"staff", "quality_manager"})))
    assert [m.recipient for m in mail_of(db, "task_offered")] == ["quentin"]


def test_a_security_assessment_offered_to_the_officer_mails_them(db, manual_clock):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": True})
    assert task_of(db, complaint, "assess").role == "information_security_officer"
    assert ("isla", "isla@example.com") in [
        (m.recipient, m.to_address) for m in mail_of(db, "task_offered")]


def test_the_offered_task_mail_is_queued_in_the_step_that_offers_it(db, manual_clock):
    complaint = record(db)
    task = task_of(db, complaint, "log")
    with pytest.raises(RuntimeError), unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, {"owner": "owen", "personal_data_involved": False},
                                EVERYONE)
        assert len(uow.session.scalars(select(OutboxMessage)).all()) == 2
        raise RuntimeError("the step rolls back")
    assert mail_of(db, "task_offered") == []


def test_an_assignee_without_an_email_address_gets_no_mail(db, manual_clock):
    owned(db, owner="olga")
    assert mail_of(db, "task_assigned") == []


def test_the_assignment_mail_is_queued_in_the_step_that_assigns(db, manual_clock):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    task = task_of(db, complaint, "classify")
    with pytest.raises(RuntimeError), unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, {"classification": "minor"}, EVERYONE)
        assert len(uow.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "task_assigned")).all()) == 1
        raise RuntimeError("the step rolls back")
    assert mail_of(db, "task_assigned") == []


def test_a_task_an_admin_reassigns_to_someone_mails_them_in_that_transaction(
        db, manual_clock):
    from engine.admin_actions import reassign_task

    complaint = owned(db)
    task = task_of(db, complaint, "resolve")
    admin = Actor("ada", frozenset({"admin"}))
    with unit_of_work(db) as uow:
        reassign_task(uow, task.id, "Owen is on leave", admin, assignee="quinn")
        # The reassignment told quinn already: a second call queues nothing.
        assert not notifications.notify_task_assigned(uow.connection, task.id, admin)
    owen, quinn = mail_of(db, "task_assigned")
    assert (owen.recipient, quinn.recipient) == ("owen", "quinn")
    assert quinn.to_address == "quinn@example.com"
    assert complaint.reference in quinn.subject


# -- the digest --------------------------------------------------------------------------------

def test_due_soon_and_overdue_follow_the_inbox_rule():
    created = datetime(2026, 12, 21, 9, tzinfo=UTC)
    due = created + timedelta(hours=10)
    assert notifications.time_state(due, created, created + timedelta(hours=7)) is None
    assert notifications.time_state(due, created, created + timedelta(hours=8)) == "due_soon"
    assert notifications.time_state(due, created, due) == "overdue"


def test_the_digest_is_one_message_per_user_listing_their_overdue_and_due_soon_tasks(
        db, manual_clock, mail_server):
    first, second = owned(db), owned(db)
    owned(db, owner="olga")  # no e-mail address: no digest
    claimed = record(db)
    with unit_of_work(db) as uow:
        instances.claim_task(uow, task_of(db, claimed, "log").id, actor("sam"))
    resolve_due = task_of(db, first, "resolve").due_at
    manual_clock.set(resolve_due + timedelta(hours=1))
    assert manual_clock.now().astimezone(LONDON).hour >= notifications.DIGEST_HOUR

    assert notifications.queue_due_digests(db) == 2
    owen, sam = mail_of(db, "task_digest")
    assert (owen.recipient, sam.recipient) == ("owen", "sam")
    assert owen.subject == "Your complaints tasks: 2 overdue, 0 due soon"
    assert first.reference in owen.body and second.reference in owen.body
    assert claimed.reference in sam.body and first.reference not in sam.body
    assert "SECRET" not in owen.body + sam.body

    assert notifications.queue_due_digests(db) == 0  # at most one a day
    manual_clock.advance(hours=3)
    assert notifications.queue_due_digests(db) == 0
    # The digests, owen's two "a task for you", and "a task for the Quality Manager" to
    # quinn and quentin for each of the three cases' classification.
    assert outbox.deliver_due(db) == 2 + 2 + 3 * 2
    digests = [m for m in mail_server.messages
               if m["Subject"].startswith("Your complaints tasks")]
    assert sorted(m["To"] for m in digests) == ["owen@example.com", "sam@example.com"]

    manual_clock.advance(days=1)
    assert notifications.queue_due_digests(db) == 2  # the next day, still overdue
    assert len(mail_of(db, "task_digest")) == 4


def test_an_unclaimed_task_waiting_for_a_role_is_in_each_holders_digest(db, manual_clock):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    classify = task_of(db, complaint, "classify")
    assert (classify.role, classify.assignee, classify.claimed_by) == (
        "quality_manager", None, None)
    manual_clock.set(classify.due_at + timedelta(hours=1))
    assert manual_clock.now().astimezone(LONDON).hour >= notifications.DIGEST_HOUR

    assert notifications.queue_due_digests(db) == 2  # quinn, quentin; qora has no address
    digests = mail_of(db, "task_digest")
    assert [m.recipient for m in digests] == ["quentin", "quinn"]
    for digest in digests:
        assert digest.subject == "Your complaints tasks: 1 overdue, 0 due soon"
        assert f"{classify.title} ({complaint.reference}), waiting for the Quality Manager" \
            in digest.body
        assert "SECRET" not in digest.body and "Ann" not in digest.body


def test_a_role_task_once_claimed_is_only_in_the_claimants_digest(db, manual_clock):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    classify = task_of(db, complaint, "classify")
    with unit_of_work(db) as uow:
        instances.claim_task(uow, classify.id, actor("quinn"))
    manual_clock.set(classify.due_at + timedelta(hours=1))
    assert notifications.queue_due_digests(db) == 1
    [digest] = mail_of(db, "task_digest")
    assert digest.recipient == "quinn" and "waiting for the" not in digest.body


def test_a_task_due_soon_is_in_the_digest(db, manual_clock):
    complaint = owned(db)
    task = task_of(db, complaint, "resolve")
    soon = task.created_at + (task.due_at - task.created_at) * 0.9
    manual_clock.set(soon)
    if manual_clock.now().astimezone(LONDON).hour < notifications.DIGEST_HOUR:
        manual_clock.set(soon.astimezone(LONDON).replace(hour=notifications.DIGEST_HOUR))
    assert notifications.queue_due_digests(db) == 1
    [message] = mail_of(db, "task_digest")
    assert message.subject == "Your complaints tasks: 0 overdue, 1 due soon"
    assert f"Resolve ({complaint.reference}), due " in message.body


def test_no_digest_before_seven_or_when_nothing_is_due(db, manual_clock):
    complaint = owned(db)
    assert notifications.queue_due_digests(db) == 0  # nothing due yet
    due = task_of(db, complaint, "resolve").due_at.astimezone(LONDON)
    early = (due + timedelta(days=1)).replace(hour=6, minute=30)
    manual_clock.set(early)
    assert notifications.queue_due_digests(db) == 0
    manual_clock.set(early.replace(hour=7, minute=0))
    assert notifications.queue_due_digests(db) == 1


def test_the_staff_acknowledgement_task_says_an_e_mail_acknowledgement_was_sent_already():
    """The complainant with an e-mail address is acknowledged by mail when the complaint
    is recorded: the staff task must not lead to a second e-mail."""
    from lxml import etree

    from engine.settings import PROJECT_ROOT
    from engine.templates import render_instructions

    tree = etree.parse(str(PROJECT_ROOT / "processes" / "acknowledgement.bpmn"))
    [source] = tree.xpath(
        "//bpmn:userTask[@id='send_acknowledgement']//spiffworkflow:instructionsForEndUser"
        "/text()", namespaces={"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
                               "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core"})
    case = {"reference": "CMP-2026-000001", "summary": "Late delivery"}
    by_mail = render_instructions(source, {**case, "complainant": {
        "name": "Alex Morgan", "email": "alex@example.com"}})
    by_phone = render_instructions(source, {**case, "complainant": {"name": "Alex Morgan"}})
    assert "already e-mailed the standard acknowledgement" in by_mail
    assert "Do not send a second one by e-mail" in by_mail
    assert "alex@example.com" not in by_mail  # the address stays on the case page
    assert "already e-mailed" not in by_phone
