"""The inbox page: my tasks with their case, London due time and state; claim and release.

Runs on SQLite and (when configured) PostgreSQL. The process is a copy of
tests/fixtures/register (``complaint_handling``) whose "Log the complaint" task has
instructions and a UI schema; complaints are recorded with engine.register.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import instances, register
from engine.audit import Actor
from engine.db import unit_of_work
from engine.models import Complaint, HumanTask, ProcessDefinition, ProcessInstance
from engine.roles import ROLES

from .conftest import FIXTURES
from .support import csrf_token, seeded_database, sign_in, test_app

PASSWORD = "correct horse battery"
USERS = {
    "sam": ["staff"],
    "sue": ["staff"],
    "quinn": ["staff", "quality_manager"],
    "owen": ["staff", "complaint_owner"],
    "aud": ["auditor"],
}
EVERYONE = Actor("root", frozenset(ROLES))
INSTRUCTIONS = "Log {{ reference }}: {{ summary }}\nThen check the owner's name."
UI_SCHEMA = ('{"ui:order": ["owner", "personal_data_involved", "summary"],'
             ' "owner": {"ui:help": "The username of the person who will own it."}}')


def actor(username: str) -> Actor:
    return Actor(username, frozenset(USERS[username]))


def process_directory(tmp_path):
    """tests/fixtures/register, with instructions and a UI schema on the log task."""
    target = tmp_path / "process"
    shutil.copytree(FIXTURES / "register", target)
    bpmn = target / "complaint_handling.bpmn"
    text = bpmn.read_text()
    marker = '<spiffworkflow:property name="formJsonSchemaFilename" value="log.json"/>'
    assert marker in text
    start = text.index(marker)
    end = text.index("</spiffworkflow:properties>", start) + len("</spiffworkflow:properties>")
    text = (text[:start] + marker
            + '<spiffworkflow:property name="formUiSchemaFilename" value="log.ui.json"/>'
            + text[start + len(marker):end]
            + f"<spiffworkflow:instructionsForEndUser>{_xml(INSTRUCTIONS)}"
            + "</spiffworkflow:instructionsForEndUser>" + text[end:])
    bpmn.write_text(text)
    (target / "forms" / "log.ui.json").write_text(UI_SCHEMA)
    return target


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture
def db(db_url, tmp_path):
    return seeded_database(db_url, USERS, [process_directory(tmp_path)], EVERYONE)


@pytest.fixture
def app(db):
    return test_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def other(app):
    """A second browser."""
    return app.test_client()




def record(db, by="sam", **changes) -> Complaint:
    data = {
        "channel": "email",
        "complainant": {"name": "Ann Example", "email": "ann@example.org"},
        "summary": "Parcel arrived broken",
        "description": "The parcel was crushed and the vase inside broken.",
    }
    data.update(changes)
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, data, actor(by))


def task_of(db, complaint: Complaint, bpmn_id: str) -> HumanTask:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(select(HumanTask).where(
            HumanTask.instance_id == complaint.instance_id, HumanTask.state == "ready",
            HumanTask.bpmn_id == bpmn_id)).one()


def complete(db, complaint, bpmn_id, data, by=EVERYONE) -> None:
    task = task_of(db, complaint, bpmn_id)
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task.id, data, by)


def rows(page: str) -> list[str]:
    """The text of each body row of the inbox table, tags removed, spaces squeezed."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    result = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        row = re.sub(r'<span class="visually-hidden">.*?</span>', "", row, flags=re.S)
        result.append(" ".join(re.sub(r"<[^>]+>", " ", row).split()))
    return result


def inbox(client, **params) -> str:
    response = client.get("/inbox", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


# -- what is listed ------------------------------------------------------------------------

def test_the_inbox_needs_signing_in(client):
    response = client.get("/inbox")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_the_inbox_lists_my_tasks_with_reference_and_london_due_time(db, client, other):
    # Received Wednesday 1 July 2026 09:00 UTC (10:00 BST): logged by Thursday 10:00 BST.
    summer = record(db, received_at="2026-07-01T09:00:00+00:00")
    classify = record(db, summary="Rude staff")
    complete(db, classify, "log", {"owner": "owen", "personal_data_involved": False})

    sam = rows(inbox(sign_in(client, "sam")))
    assert len(sam) == 1  # the classify task is the quality manager's
    assert summer.reference in sam[0] and "Log the complaint" in sam[0]
    assert "Thu 02 Jul 2026, 10:00" in sam[0]

    quinn = rows(inbox(sign_in(other, "quinn")))
    assert len(quinn) == 2
    assert any(classify.reference in r and "Classify" in r for r in quinn)
    other.post("/logout", data={"csrf_token": csrf_token(other, "/inbox")})
    aud = inbox(sign_in(other, "aud"))
    assert rows(aud) == [] and "No tasks are waiting for you." in aud


def test_a_task_assigned_to_me_is_mine_and_no_one_elses(db, client, other):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    complete(db, complaint, "classify", {"classification": "minor"})
    assert [complaint.reference in r and "Resolve" in r
            for r in rows(inbox(sign_in(client, "owen")))] == [True]
    assert not any("Resolve" in r for r in rows(inbox(sign_in(other, "quinn"))))


def test_overdue_and_due_soon(db, client, manual_clock):
    complaint = record(db)
    task = task_of(db, complaint, "log")
    allowed = task.due_at - task.created_at
    assert allowed > timedelta(hours=1)
    sign_in(client, "sam")
    assert rows(inbox(client))[0].count("Due soon") == 0
    assert "Overdue" not in rows(inbox(client))[0]

    manual_clock.advance(allowed * 0.79)
    assert rows(inbox(client))[0].count("Due soon") == 0
    manual_clock.advance(allowed * 0.02)
    assert "Due soon" in rows(inbox(client))[0]
    assert len(rows(inbox(client, state="due_soon"))) == 1
    assert rows(inbox(client, state="overdue")) == []

    manual_clock.advance(allowed * 0.2)
    row = rows(inbox(client))[0]
    assert "Overdue" in row and "Due soon" not in row
    assert len(rows(inbox(client, state="overdue"))) == 1
    assert rows(inbox(client, state="due_soon")) == []


def test_sorting_and_filters(db, client, manual_clock):
    first = record(db, summary="First")
    manual_clock.advance(timedelta(minutes=5))
    second = record(db, summary="Second")
    manual_clock.advance(timedelta(minutes=5))
    third = record(db, summary="Third")
    complete(db, third, "log", {"owner": "owen", "personal_data_involved": False})
    sign_in(client, "quinn")

    def order(page):
        found = []
        for row in rows(page):
            ref = next(c.reference for c in (first, second, third) if c.reference in row)
            found.append((ref, "Classify" if "Classify" in row else "Log"))
        return found

    by_due = [(first.reference, "Log"), (second.reference, "Log"), (third.reference, "Classify")]
    assert order(inbox(client)) == by_due  # classify has no due time: last
    assert order(inbox(client, sort="due")) == by_due
    assert order(inbox(client, sort="created")) == by_due
    assert order(inbox(client, sort="title")) == [
        (third.reference, "Classify"), (first.reference, "Log"), (second.reference, "Log")]
    assert order(inbox(client, sort="nonsense")) == by_due

    assert order(inbox(client, q=second.reference.lower())) == [(second.reference, "Log")]
    assert order(inbox(client, q="classif")) == [(third.reference, "Classify")]
    assert "No tasks match these filters." in inbox(client, q="no such thing")

    token = csrf_token(client, "/inbox")
    client.post(f"/inbox/{task_of(db, first, 'log').id}/claim", data={"csrf_token": token})
    assert order(inbox(client, state="mine")) == [(first.reference, "Log")]
    assert order(inbox(client, state="unclaimed")) == [
        (second.reference, "Log"), (third.reference, "Classify")]


def test_need_to_know_cases_show_only_their_reference(db, client):
    complaint = record(db, summary="Secret matter", personal_data_involved=True)
    page = inbox(sign_in(client, "sam"))
    assert complaint.reference in page
    assert "Secret matter" not in page and "Ann Example" not in page


# -- claim and release ---------------------------------------------------------------------

def test_claim_then_others_see_who_and_cannot_claim_then_release(db, client, other):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = client.post(f"/inbox/{task_id}/claim",
                           data={"csrf_token": csrf_token(client, "/inbox"),
                                 "next": "/inbox?sort=title"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox?sort=title"
    page = inbox(client)
    assert "You claimed" in page
    assert "Claimed by you" in rows(page)[0]
    assert f'action="/inbox/{task_id}/release"' in page

    sign_in(other, "sue")
    page = inbox(other)
    assert "Claimed by sam" in rows(page)[0]
    assert f'action="/inbox/{task_id}/claim"' not in page
    response = other.post(f"/inbox/{task_id}/claim",
                          data={"csrf_token": csrf_token(other, "/inbox")})
    assert response.status_code == 302
    page = inbox(other)
    assert "Claiming did not work" in page and "claimed by sam" in page
    assert task_of(db, complaint, "log").claimed_by == "sam"
    response = other.post(f"/inbox/{task_id}/release",
                          data={"csrf_token": csrf_token(other, "/inbox")})
    assert "Releasing did not work" in inbox(other)
    assert task_of(db, complaint, "log").claimed_by == "sam"

    client.post(f"/inbox/{task_id}/release", data={"csrf_token": csrf_token(client, "/inbox")})
    assert "You released" in inbox(client)
    assert task_of(db, complaint, "log").claimed_by is None
    assert "Claimed by" not in rows(inbox(other))[0]


def test_claiming_needs_csrf_and_a_task_i_may_see(db, client):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    log_id = record(db)
    log_task = task_of(db, log_id, "log").id
    classify = task_of(db, complaint, "classify").id
    sign_in(client, "sam")
    assert client.post(f"/inbox/{log_task}/claim").status_code == 400
    assert client.post(f"/inbox/{log_task}/release").status_code == 400
    token = csrf_token(client, "/inbox")
    assert client.post(f"/inbox/{classify}/claim", data={"csrf_token": token}).status_code == 404
    assert client.post("/inbox/nope/claim", data={"csrf_token": token}).status_code == 404
    assert task_of(db, complaint, "classify").claimed_by is None


def test_the_redirect_after_claiming_stays_on_this_site(db, client):
    task_id = task_of(db, record(db), "log").id
    sign_in(client, "sam")
    response = client.post(f"/inbox/{task_id}/claim",
                           data={"csrf_token": csrf_token(client, "/inbox"),
                                 "next": "//evil.example/"})
    assert response.headers["Location"] == "/inbox"


def test_a_task_of_another_process_shows_its_process_id(db, client):
    now = datetime.now(UTC)
    with unit_of_work(db) as uow:
        definition = ProcessDefinition(
            process_id="supplier_review", version=1, name="Supplier review", sha256="0" * 64,
            sources={}, specs_json="{}", user_tasks=[], deployed_at=now)
        instance = ProcessInstance(definition=definition, process_id="supplier_review",
                                   status="running", state="", created_at=now, updated_at=now)
        uow.session.add(instance)
        uow.session.flush()
        task_id = str(uuid.uuid4())
        uow.session.add(HumanTask(id=task_id, instance_id=instance.id, bpmn_id="review",
                                  title="Review the supplier", role="staff", state="ready",
                                  created_at=now))
    sign_in(client, "sam")
    [row] = rows(inbox(client))
    assert "supplier_review" in row and "Review the supplier" in row and "No due time" in row
    assert rows(inbox(client, q="nothing like it")) == []
    assert len(rows(inbox(client, q="review the"))) == 1
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "supplier_review" in page and "Complete the task" in page
