"""The task page: instructions, the case beside the form, errors, completing, conflicts.

Runs on SQLite and (when configured) PostgreSQL, on the process of test_pages_inbox.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.db import unit_of_work
from engine.instances import complete_task
from engine.models import AuditEvent

from . import test_pages_inbox as shared
from .test_pages_inbox import actor, complete, csrf_token, inbox, record, rows, sign_in, task_of

# The fixtures of the inbox tests: a deployed process, users, two browsers.
db = shared.db
app = shared.app
client = shared.client
other = shared.other

NASTY = 'Broken <b>vase</b> & "more"'


def page_of(client, task_id: str) -> str:
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def submit(client, task_id, form, token=True):
    data = dict(form)
    if token:
        data["csrf_token"] = csrf_token(client, f"/tasks/{task_id}")
    return client.post(f"/tasks/{task_id}", data=data)


def test_the_page_shows_instructions_escaped_the_case_and_the_form(db, client):
    complaint = record(db, summary=NASTY)
    task_id = task_of(db, complaint, "log").id
    page = page_of(sign_in(client, "sam"), task_id)

    assert "<h1>Log the complaint" in page
    instructions = page.split('<div class="instructions">', 1)[1].split("</div>", 1)[0]
    # The summary was escaped once by the engine and shows as text: never as markup,
    # and never double-escaped.
    assert "<b>" not in instructions
    assert "&lt;b&gt;vase&lt;/b&gt; &amp; &#34;more&#34;" in instructions
    assert "&amp;lt;" not in instructions
    assert f"Log {complaint.reference}: " in instructions
    assert "<br>Then check the owner&#39;s name." in instructions

    # The case beside the form, in London time.
    context = page.split('<aside class="case-context"', 1)[1].split("</aside>", 1)[0]
    assert complaint.reference in context and "Email" in context and "Received" in context
    assert "Log by" in context and "Acknowledge by" in context
    assert "Broken &lt;b&gt;vase" in context

    # The form from the JSON Schema, in the UI schema's order, with labels and help.
    form = page.split(f'action="/tasks/{task_id}"', 1)[1].split("</form>", 1)[0]
    assert 'name="csrf_token"' in form
    labels = re.findall(r'<label for="([^"]+)"', form)
    assert labels == ["f-owner", "f-personal_data_involved", "f-summary"]
    assert "The username of the person who will own it." in form
    assert 'type="checkbox" id="f-personal_data_involved"' in form


def test_a_need_to_know_case_shows_only_its_reference_unless_allowed(db, client, other):
    complaint = record(db, summary="Secret matter", personal_data_involved=True)
    task_id = task_of(db, complaint, "log").id
    sam = page_of(sign_in(client, "sam"), task_id)
    context = sam.split('<aside class="case-context"', 1)[1].split("</aside>", 1)[0]
    assert complaint.reference in context and "Secret matter" not in context
    assert "Received" not in context
    # (The instructions are the task's own text, written by the process owner: shown.)

    quinn = page_of(sign_in(other, "quinn"), task_id)  # a quality manager sees it all
    assert "Secret matter" in quinn.split('<aside class="case-context"', 1)[1]
    with unit_of_work(db, write=False) as uow:
        reads = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "complaint_read")).all()
    assert [(e.actor, e.details["via"]) for e in reads] == [("quinn", "task")]


def test_a_form_error_is_shown_at_the_field_and_what_was_typed_is_kept(db, client):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = submit(client, task_id, {"owner": "", "summary": "Typed summary",
                                        "personal_data_involved": "true"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    owner = page.split('<label for="f-owner">', 1)[1].split("</div>", 1)[0]
    assert '<p class="error" id="f-owner-error">' in owner
    assert "this field is required" in owner
    assert 'aria-invalid="true"' in owner
    assert 'value="Typed summary"' in page
    assert re.search(r'id="f-personal_data_involved" name="personal_data_involved" '
                     r'value="true"\s+checked', page)
    assert task_of(db, complaint, "log").state == "ready"


def test_a_valid_submission_completes_the_task_and_the_next_one_appears(db, client):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "quinn")
    assert len(rows(inbox(client))) == 1
    response = submit(client, task_id, {"owner": "owen", "personal_data_involved": ""})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/inbox"
    page = inbox(client)
    assert "Task completed" in page
    assert [("Classify" in r, complaint.reference in r) for r in rows(page)] == [(True, True)]
    next_task = task_of(db, complaint, "classify")
    assert "Classify" in page_of(client, next_task.id)
    with unit_of_work(db, write=False) as uow:
        done = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "task_completed", AuditEvent.task_id == task_id)).one()
    assert done.actor == "quinn"
    assert done.details["data"] == {"owner": "owen", "personal_data_involved": False}


def test_a_task_completed_meanwhile_keeps_what_was_typed_with_a_plain_message(db, client):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    token = csrf_token(client, f"/tasks/{task_id}")  # the page is open in the browser
    with unit_of_work(db) as uow:  # ... when sue completes it
        complete_task(uow, task_id, {"owner": "owen", "personal_data_involved": False},
                      actor("sue"))
    response = client.post(f"/tasks/{task_id}", data={
        "csrf_token": token, "owner": "someone", "summary": "My careful words"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "This task is no longer open: it was completed by sue." in page
    assert "nothing is lost" in page
    assert 'value="My careful words"' in page and 'value="someone"' in page

    # Later, the page says the task is closed and offers no form.
    later = page_of(client, task_id)
    assert "no longer open" in later and f'action="/tasks/{task_id}"' not in later


def test_a_task_claimed_by_someone_else_cannot_be_completed(db, client, other):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(other, "sue")
    other.post(f"/inbox/{task_id}/claim", data={"csrf_token": csrf_token(other, "/inbox")})
    sign_in(client, "sam")
    assert "claimed by sue" in page_of(client, task_id)
    response = submit(client, task_id, {"owner": "owen", "summary": "Kept"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "This task is claimed by sue" in page and 'value="Kept"' in page
    assert task_of(db, complaint, "log").state == "ready"

    # Sue, who claimed it, may complete it.
    response = submit(other, task_id, {"owner": "owen"})
    assert response.status_code == 302


def test_posting_without_the_csrf_token_is_refused(db, client):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = submit(client, task_id, {"owner": "owen"}, token=False)
    assert response.status_code == 400
    assert task_of(db, complaint, "log").state == "ready"


def test_another_users_task_is_not_found(db, client):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    classify = task_of(db, complaint, "classify").id  # the quality manager's
    sign_in(client, "sam")
    assert client.get(f"/tasks/{classify}").status_code == 404
    assert submit(client, classify, {"classification": "minor"}).status_code == 404
    assert client.get("/tasks/no-such-task").status_code == 404
    assert client.get(f"/tasks/{classify}x").status_code == 404
    assert task_of(db, complaint, "classify").state == "ready"


def test_the_task_page_needs_signing_in(db, client):
    task_id = task_of(db, record(db), "log").id
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_a_task_without_a_form_is_completed_with_its_button(db, client):
    complaint = record(db)
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    complete(db, complaint, "classify", {"classification": "minor"})
    complete(db, complaint, "resolve", {"root_cause": "Packing", "resolution_summary": "Refunded"},
             by=actor("owen"))
    close = task_of(db, complaint, "close").id
    sign_in(client, "quinn")
    page = page_of(client, close)
    assert "Complete the task" in page
    response = submit(client, close, {})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert rows(inbox(client)) == []
