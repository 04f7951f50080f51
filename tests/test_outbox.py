"""The outbox: mail queued with its step, delivered to a real SMTP server (aiosmtpd on
loopback) with retries and backoff, at least once and never lost; resent by admins.

Runs on SQLite and (when configured) PostgreSQL. Time is the manual clock.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import instances, outbox, register  # noqa: F401 - instances first: import order
from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.errors import Conflict, Forbidden, NotFound
from engine.models import AuditEvent, OutboxMessage
from engine.roles import ROLES

from .conftest import FIXTURES
from .mail_server import free_port, mail_server_fixture  # noqa: F401 - a fixture
from .support import deploy

STAFF = Actor("sam", frozenset({"staff"}))
ADMIN = Actor("ada", frozenset({"admin"}))
EVERYONE = Actor("root", frozenset(ROLES))


def intake(**changes):
    data = {
        "channel": "website",
        "complainant": {"name": "Ann Example", "email": "ann@example.org"},
        "summary": "Parcel arrived broken",
        "description": "The parcel was crushed and the vase inside broken.",
    }
    data.update(changes)
    return data


@pytest.fixture
def deployed(db):
    deploy(db, FIXTURES / "register", EVERYONE)
    return db


def record(db, **changes):
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, intake(**changes), STAFF)


def messages(db) -> list[OutboxMessage]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def audit_actions(db) -> list[str]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def queue_one(db, to="someone@example.org", **fields):
    with unit_of_work(db) as uow:
        return outbox.queue(uow.connection, kind=fields.pop("kind", "test"), to_address=to,
                            subject=fields.pop("subject", "Hello"),
                            body=fields.pop("body", "Text.\n"), **fields)


class WorkerDied(BaseException):
    """Stands for the worker process being killed."""


# -- queued with the step ----------------------------------------------------------------------

def test_recording_a_complaint_with_an_email_address_queues_its_acknowledgement(
        deployed, manual_clock):
    complaint = record(deployed)
    [message] = messages(deployed)
    assert (message.kind, message.to_address, message.state) == (
        "acknowledgement", "ann@example.org", "queued")
    assert message.instance_id == complaint.instance_id
    assert message.next_attempt_at == manual_clock.now()
    assert message.message_id.startswith("<") and message.message_id.endswith(">")
    assert complaint.reference in message.subject
    assert "mail_queued" in audit_actions(deployed)


@pytest.mark.parametrize("order", ["as_imported", "reversed"])
def test_the_acknowledgement_does_not_depend_on_the_order_of_the_after_step_hooks(
        deployed, manual_clock, monkeypatch, order):
    # Which of engine.register and engine.notifications registers its hook first
    # depends on which module a program imports first.
    hooks = list(instances._after_step_hooks)
    monkeypatch.setattr(instances, "_after_step_hooks",
                        hooks if order == "as_imported" else hooks[::-1])
    complaint = record(deployed)
    [message] = messages(deployed)
    assert message.instance_id == complaint.instance_id
    assert message.dedupe_key == f"acknowledgement:{complaint.reference}"
    assert complaint.reference in message.subject and complaint.reference in message.body


def test_a_step_that_rolls_back_leaves_no_mail(deployed, manual_clock):
    with pytest.raises(RuntimeError, match="after the step"), unit_of_work(deployed) as uow:
        register.record_complaint(uow, intake(), STAFF)
        assert len(uow.session.scalars(select(OutboxMessage)).all()) == 1
        raise RuntimeError("something failed after the step")
    assert messages(deployed) == []


def test_a_complaint_without_an_email_address_queues_nothing(deployed, manual_clock):
    record(deployed, channel="telephone", complainant={"name": "Bob", "phone": "0123"})
    assert messages(deployed) == []


def test_a_message_with_a_dedupe_key_is_queued_once(db, manual_clock):
    assert queue_one(db, dedupe_key="once") is not None
    assert queue_one(db, dedupe_key="once") is None
    assert len(messages(db)) == 1


def test_an_address_that_could_inject_headers_is_refused(db, manual_clock):
    from engine.errors import InvalidData
    for address in ("a@example.org\r\nBcc: b@example.org", "a@example.org, b@example.org",
                    "nobody"):
        with pytest.raises(InvalidData):
            queue_one(db, to=address)
    assert messages(db) == []


# -- delivery --------------------------------------------------------------------------------

def test_the_acknowledgement_reaches_the_smtp_server_exactly_once(
        deployed, manual_clock, mail_server):
    complaint = record(deployed)
    assert outbox.deliver_due(deployed) == 1
    assert outbox.deliver_due(deployed) == 0
    manual_clock.advance(hours=5)
    assert outbox.deliver_due(deployed) == 0

    [received] = mail_server.messages
    [stored] = messages(deployed)
    assert received["Message-ID"] == stored.message_id
    assert received["To"] == "ann@example.org"
    assert received["From"] == "complaints@example.com"
    assert complaint.reference in received["Subject"]
    assert received["Auto-Submitted"] == "auto-generated"
    assert mail_server.recorder.envelopes == [("complaints@example.com", ["ann@example.org"])]
    assert (stored.state, stored.attempts, stored.sent_at) == ("sent", 1, stored.last_attempt_at)
    assert "mail_sent" in audit_actions(deployed)
    with unit_of_work(deployed, write=False) as uow:
        assert outbox.next_attempt_due(uow.connection) is None


def test_a_name_beyond_ascii_arrives_intact(deployed, manual_clock, mail_server):
    record(deployed, complainant={"name": "Zoë Ñúñez-Łukasz 李", "email": "zoe@example.org"})
    assert outbox.deliver_due(deployed) == 1
    [received] = mail_server.messages
    assert "Dear Zoë Ñúñez-Łukasz 李," in received.get_content()


def test_without_an_smtp_server_mail_stays_queued(db, manual_clock, monkeypatch):
    monkeypatch.delenv("COMPLAINTS_SMTP_URL", raising=False)
    queue_one(db)
    assert outbox.deliver_due(db) == 0
    [message] = messages(db)
    assert (message.state, message.attempts) == ("queued", 0)
    with unit_of_work(db, write=False) as uow:
        # Nothing will be sent, so the worker need not wake up for it.
        assert outbox.next_attempt_due(uow.connection) is None


def test_next_attempt_due_is_the_earliest_queued_attempt(db, manual_clock, mail_server):
    start = manual_clock.now()
    queue_one(db)
    manual_clock.advance(minutes=5)
    queue_one(db)
    with unit_of_work(db, write=False) as uow:
        assert outbox.next_attempt_due(uow.connection) == start


def test_a_refusing_server_is_retried_with_backoff_then_failed_then_resent_by_an_admin(
        db, manual_clock, mail_server):
    queue_one(db)
    mail_server.recorder.refuse_data = "451 4.3.0 Try again later"
    waits = []
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        assert outbox.deliver_due(db) == 0
        [message] = messages(db)
        assert message.attempts == attempt
        assert message.last_error == "451 4.3.0 Try again later"
        if attempt < outbox.MAX_ATTEMPTS:
            assert message.state == "queued"
            wait = message.next_attempt_at - manual_clock.now()
            waits.append(wait)
            manual_clock.advance(wait - timedelta(seconds=1))
            assert outbox.deliver_due(db) == 0  # not due yet: no attempt
            assert messages(db)[0].attempts == attempt
            manual_clock.advance(seconds=1)
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60)]
    [message] = messages(db)
    assert (message.state, message.next_attempt_at) == ("failed", None)
    assert "mail_failed" in audit_actions(db)
    manual_clock.advance(days=1)
    assert outbox.deliver_due(db) == 0
    assert mail_server.messages == []

    mail_server.recorder.refuse_data = None
    with unit_of_work(db) as uow:
        outbox.resend(uow, message.id, ADMIN)
    assert outbox.deliver_due(db) == 1
    [received] = mail_server.messages
    assert received["Message-ID"] == message.message_id
    assert messages(db)[0].state == "sent"
    assert audit_actions(db).count("mail_resend") == 1


def test_a_permanent_refusal_fails_at_once(db, manual_clock, mail_server):
    queue_one(db)
    mail_server.recorder.refuse_data = "550 5.1.1 No such mailbox"
    assert outbox.deliver_due(db) == 0
    [message] = messages(db)
    assert (message.state, message.attempts) == ("failed", 1)
    assert message.last_error == "550 5.1.1 No such mailbox"


def test_an_unreachable_server_is_tried_again_later(db, manual_clock, monkeypatch):
    monkeypatch.setenv("COMPLAINTS_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    queue_one(db)
    assert outbox.deliver_due(db) == 0
    [message] = messages(db)
    assert (message.state, message.attempts) == ("queued", 1)
    assert "ConnectionRefusedError" in message.last_error
    assert message.next_attempt_at == manual_clock.now() + timedelta(minutes=1)


def test_a_crash_after_the_server_accepted_sends_again_with_the_same_message_id(
        db, manual_clock, mail_server, monkeypatch):
    queue_one(db)

    def die(*args, **kwargs):
        raise WorkerDied()

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "_record_sent", die)
        with pytest.raises(WorkerDied):
            outbox.deliver_due(db)
    assert len(mail_server.messages) == 1  # accepted, but not recorded as sent
    [message] = messages(db)
    assert (message.state, message.attempts) == ("queued", 1)

    assert outbox.deliver_due(db) == 0  # the crashed attempt's lease still runs
    manual_clock.advance(minutes=1)
    assert outbox.deliver_due(db) == 1
    first, second = mail_server.messages
    assert first["Message-ID"] == second["Message-ID"] == message.message_id
    assert first["Date"] == second["Date"]
    assert first.get_content() == second.get_content()
    assert messages(db)[0].state == "sent"
    assert outbox.deliver_due(db) == 0


def test_two_workers_at_once_send_each_message_once(db, manual_clock, mail_server):
    for n in range(12):
        queue_one(db, to=f"person{n}@example.org")
    errors = []

    def work():
        try:
            outbox.deliver_due(db)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [m["Message-ID"] for m in mail_server.messages]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert {m.state for m in messages(db)} == {"sent"}


@pytest.mark.postgres  # row locks: SQLite writers queue on the database lock instead
def test_on_postgresql_a_message_another_worker_holds_is_skipped_not_waited_for(
        pg_url, manual_clock, mail_server):
    db = get_engine(pg_url)
    held, free = queue_one(db), queue_one(db)
    with db.connect() as other, other.begin():  # another worker, mid-claim
        other.execute(select(OutboxMessage.id).where(OutboxMessage.id == held.id)
                      .with_for_update())
        assert outbox.deliver_due(db) == 1  # returns at once: no waiting on the lock
    assert [m["Message-ID"] for m in mail_server.messages] == [free.message_id]
    assert [m.state for m in messages(db)] == ["queued", "sent"]


# -- admins ------------------------------------------------------------------------------------

def test_only_failed_mail_is_resent_and_only_by_admins(db, manual_clock, mail_server):
    queued = queue_one(db)
    with pytest.raises(Conflict, match="only failed mail"), unit_of_work(db) as uow:
        outbox.resend(uow, queued.id, ADMIN)
    with pytest.raises(Forbidden), unit_of_work(db) as uow:
        outbox.resend(uow, queued.id, STAFF)
    with pytest.raises(NotFound), unit_of_work(db) as uow:
        outbox.resend(uow, 999, ADMIN)
    assert "mail_resend" not in audit_actions(db)


# -- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.org:2525", ("mail.example.org", 2525, False, False, None)),
    ("smtp://mail.example.org", ("mail.example.org", 25, False, False, None)),
    ("smtps://u%40x:p@mail.example.org", ("mail.example.org", 465, True, False, "u@x")),
    ("smtp+starttls://mail.example.org", ("mail.example.org", 587, False, True, None)),
])
def test_the_smtp_url_names_host_port_security_and_login(url, expected):
    server = outbox.SmtpServer.from_url(url)
    assert (server.host, server.port, server.tls, server.starttls, server.username) == expected


@pytest.mark.parametrize("url", ["http://mail.example.org", "smtp://", "smtp://host:port"])
def test_a_bad_smtp_url_is_a_clear_error(url):
    with pytest.raises(ValueError, match="COMPLAINTS_SMTP_URL"):
        outbox.SmtpServer.from_url(url)
