"""The admins' outbox page: queued, sent and failed mail; resending failed mail (CSRF,
audited); mail about need-to-know cases withheld. SQLite and (when configured)
PostgreSQL; the SMTP server is aiosmtpd on loopback."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import instances, outbox, register  # noqa: F401 - instances first: import order
from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.models import AuditEvent, OutboxMessage
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT
from engine.users import create_token, create_user

from .conftest import FIXTURES
from .mail_server import mail_server_fixture  # noqa: F401 - a fixture
from .support import csrf_token, seeded_database, sign_in, test_app

PASSWORD = "correct horse battery"
USERS = {"ada": ["admin"], "sam": ["staff"]}
EVERYONE = Actor("root", frozenset(ROLES))


@pytest.fixture
def db(db_url):
    return seeded_database(db_url, USERS, [FIXTURES / "register"], EVERYONE)


@pytest.fixture
def client(db):
    return test_app().test_client()




def record(db, name="Ann Example", email="ann@example.org", **changes):
    data = {"channel": "website", "complainant": {"name": name, "email": email},
            "summary": "Parcel arrived broken", "description": "Crushed.", **changes}
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, data, Actor("sam", frozenset({"staff"})))


def stored(db) -> list[OutboxMessage]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def page(client, **params) -> str:
    response = client.get("/admin/outbox", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def failed_message(db, mail_server):
    """A complaint whose acknowledgement the server refused for good."""
    complaint = record(db)
    mail_server.recorder.refuse_data = "550 5.1.1 No such mailbox"
    outbox.deliver_due(db)
    mail_server.recorder.refuse_data = None
    [message] = stored(db)
    assert message.state == "failed"
    return complaint, message


def test_the_outbox_is_for_admins_only(db, client):
    assert client.get("/admin/outbox").status_code == 302  # sign in first
    sign_in(client, "sam")
    assert client.get("/admin/outbox").status_code == 403
    assert client.post("/admin/outbox/1/resend",
                       data={"csrf_token": csrf_token(client, "/inbox")}).status_code == 403


def test_admins_see_queued_sent_and_failed_mail(db, client, manual_clock, mail_server):
    first, _ = failed_message(db, mail_server)
    sent = record(db, name="Bob Sent", email="bob@example.org")
    outbox.deliver_due(db)
    queued = record(db, name="Cy Queued", email="cy@example.org")
    sign_in(client, "ada")

    everything = page(client)
    for complaint in (first, sent, queued):
        assert complaint.reference in everything
    assert "550 5.1.1 No such mailbox" in everything
    assert "All (3)" in everything and "Failed (1)" in everything
    assert "Dear Bob Sent," in everything  # the text, under "Text"

    failed = page(client, state="failed")
    assert first.reference in failed and sent.reference not in failed
    assert failed.count(">Resend<") == 1
    assert queued.reference in page(client, state="queued")
    assert sent.reference in page(client, state="sent")
    assert client.get("/admin/outbox?state=lost").status_code == 400


def test_without_a_mail_server_the_page_says_mail_is_kept(db, client, manual_clock, monkeypatch):
    monkeypatch.delenv("COMPLAINTS_SMTP_URL", raising=False)
    record(db)
    text = page(sign_in(client, "ada"))
    assert "COMPLAINTS_SMTP_URL</code> is not set" in text
    assert "Queued (1)" in text


def test_an_admin_resends_failed_mail_with_csrf_and_it_is_delivered_with_its_message_id(
        db, client, manual_clock, mail_server):
    _, message = failed_message(db, mail_server)
    sign_in(client, "ada")
    url = f"/admin/outbox/{message.id}/resend"
    assert client.post(url).status_code == 400  # no CSRF token: nothing changes
    assert stored(db)[0].state == "failed"

    response = client.post(url, data={"csrf_token": csrf_token(client, "/admin/outbox"),
                                      "state": "failed"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/outbox?state=failed")
    assert "queued again" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert stored(db)[0].state == "queued"
    with unit_of_work(db, write=False) as uow:
        [event] = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "mail_resend")).all()
    assert (event.actor, event.details["outbox_id"]) == ("ada", message.id)

    assert outbox.deliver_due(db) == 1
    [received] = mail_server.messages
    assert received["Message-ID"] == message.message_id

    again = client.post(url, data={"csrf_token": csrf_token(client, "/admin/outbox")},
                        follow_redirects=True)
    assert "Not resent" in again.get_data(as_text=True)
    assert client.post("/admin/outbox/9999/resend",
                       data={"csrf_token": csrf_token(client, "/admin/outbox")}
                       ).status_code == 404


def test_mail_about_a_need_to_know_case_is_withheld_from_admins(db, client, manual_clock,
                                                                monkeypatch):
    monkeypatch.delenv("COMPLAINTS_SMTP_URL", raising=False)
    secret = record(db, name="Nina Private", email="nina@example.org",
                    personal_data_involved=True)
    ordinary = record(db)
    with unit_of_work(db) as uow:  # a digest naming the need-to-know case, and one not
        for reference in (secret.reference, ordinary.reference):
            outbox.queue(uow.connection, kind="task_digest", to_address="owen@example.org",
                         recipient="owen", subject="Your complaints tasks",
                         body=f"Overdue:\n  - Resolve ({reference})\n")
    text = page(sign_in(client, "ada"))
    assert text.count("(withheld: need-to-know case)") == 2 * 2  # recipient and text
    assert secret.reference not in text
    assert "Nina" not in text and "nina@example.org" not in text
    assert text.count(ordinary.reference) >= 3  # its acknowledgement and its digest


# -- the policy, end to end ------------------------------------------------------------------

def test_a_complaint_through_the_api_gets_one_acknowledgement_at_the_smtp_server(
        db_url, manual_clock, mail_server):
    """Done when: the acknowledgement mail reaches a local SMTP server exactly once (the
    policy's processes/, recorded through the API, delivered by two worker runs)."""
    engine = get_engine(db_url)
    with unit_of_work(engine) as uow:
        create_user(uow.session, "sam", PASSWORD, ["staff"])
        token = create_token(uow.session, "sam")
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", EVERYONE)
    assert result.ok, [str(p) for p in result.problems]
    client = test_app().test_client()
    response = client.post("/api/v1/complaints", headers={"Authorization": f"Bearer {token}"},
                           json={"channel": "email", "summary": "Late delivery",
                                 "description": "The sofa came three weeks late.",
                                 "complainant": {"name": "Dee Doe", "email": "dee@example.org",
                                                 "phone": "07700 900999"}})
    assert response.status_code == 201, response.get_data(as_text=True)
    reference = response.get_json()["reference"]

    assert outbox.deliver_due(engine) == 1
    manual_clock.advance(hours=1)
    assert outbox.deliver_due(engine) == 0
    [received] = mail_server.messages
    assert received["To"] == "dee@example.org"
    assert reference in received["Subject"]
    body = received.get_content()
    assert "Dear Dee Doe," in body and reference in body
    assert "sofa" not in body and "07700" not in body
