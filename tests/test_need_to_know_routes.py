"""No page or API route lets an unrelated user learn that a need-to-know case exists
(issue 4, "Done when").

A sweep over every GET route of the application, so that routes added later are checked
too: signed in as staff who are not the case's owner, ISO, QM or grantee, a route given
the case's reference, task, document or instance answers exactly as it does for ones
that do not exist (same status: no 403-versus-404 tell), and no page names the case.

Runs on SQLite and (when configured) PostgreSQL, on the process of test_pages_inbox.
"""

from __future__ import annotations

import re
import uuid

import pytest

from engine.db import unit_of_work
from engine.documents import store_document
from engine.users import create_token

from . import test_pages_inbox as shared
from .test_pages_inbox import actor, complete, record, sign_in, task_of

db = shared.db
app = shared.app
client = shared.client

SECRET_SUMMARY = "Bank details posted to a neighbour"
MISSING = {"reference": "CMP-2099-999999", "task_id": str(uuid.uuid4()), "document_id": "999999",
           "instance_id": "999999"}


@pytest.fixture
def secret(db, tmp_path, monkeypatch):
    """A need-to-know case owned by owen, with an open ISO task and a document; and an
    ordinary case beside it."""
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_DIR", str(tmp_path / "evidence"))
    record(db, summary="Ordinary matter")
    complaint = record(db, summary=SECRET_SUMMARY, personal_data_involved=True,
                       complainant={"name": "Nina Private", "email": "nina@example.org"})
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": True})
    task = task_of(db, complaint, "assess")
    with unit_of_work(db) as uow:
        document = store_document(uow, complaint.reference, "statement.txt", "text/plain",
                                  b"statement", actor("owen"))
    return {"reference": complaint.reference, "task_id": task.id,
            "document_id": str(document.id), "instance_id": str(complaint.instance_id)}


def _fill(rule, values: dict[str, str]) -> str | None:
    """The rule's path with its parameters filled from ``values`` (generic values for the
    others); None when it has none of the identifying parameters."""
    names = set(rule.arguments)
    if not names & set(values):
        return None
    path = rule.rule
    for name in rule.arguments:
        value = values.get(name, {"process_id": "complaint_handling", "version": "1",
                                  "review_id": "1"}.get(name, "x"))
        path = re.sub(r"<(?:[^:<>]+:)?" + name + ">", value, path)
    return path


def _get_routes(app):
    return [r for r in app.url_map.iter_rules()
            if "GET" in r.methods and r.endpoint != "static"]


def _normal(body: str, ids: dict) -> str:
    """The body with the (distinctive) identifiers asked for replaced by their names."""
    for name in ("reference", "task_id"):
        body = body.replace(ids[name], f"<{name}>")
    return body


def _mentions(body: str, secret: dict) -> bool:
    return any(text in body for text in (secret["reference"], SECRET_SUMMARY, "Nina Private"))


@pytest.mark.parametrize("username", ["sam", "sue"])
def test_no_route_tells_unrelated_staff_a_need_to_know_case_exists(
        db, app, client, secret, username):
    sign_in(client, username)
    checked = 0
    for rule in _get_routes(app):
        secret_path = _fill(rule, secret)
        if secret_path is None:
            response = client.get(rule.rule)
            body = response.get_data(as_text=True)
            assert not _mentions(body, secret), f"{rule.rule} names the case"
            continue
        known = client.get(secret_path)
        unknown = client.get(_fill(rule, MISSING))
        assert known.status_code == unknown.status_code, (
            f"{secret_path}: {known.status_code}, but {unknown.status_code} for one that "
            "does not exist")
        body = known.get_data(as_text=True)
        if known.status_code >= 400:  # the same answer, but for the identifier asked for
            assert _normal(body, secret) == _normal(unknown.get_data(as_text=True), MISSING), \
                secret_path
            body = _normal(body, secret)
        assert not _mentions(body, secret), secret_path
        checked += 1
    assert checked >= 5  # the case page, its documents, the task page, the API, instances


def test_the_api_lists_and_counts_nothing_of_it_for_unrelated_staff(db, client, secret):
    with unit_of_work(db) as uow:
        token = create_token(uow.session, "sam")
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/api/v1/complaints", "/api/v1/complaints?q=neighbour", "/api/v1/tasks"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert not _mentions(response.get_data(as_text=True), secret), path
    assert client.get("/api/v1/complaints", headers=headers).get_json()["total"] == 1
    for path in (f"/api/v1/tasks/{secret['task_id']}/claim",
                 f"/api/v1/tasks/{secret['task_id']}/complete"):
        response = client.post(path, headers=headers, json={"data": {}})
        assert response.status_code == 404, path


def test_the_register_and_its_export_count_nothing_of_it(db, client, secret):
    sign_in(client, "sam")
    page = client.get("/register").get_data(as_text=True)
    assert "1 complaint." in page and not _mentions(page, secret)
    csv = client.get("/register.csv").get_data(as_text=True)
    assert len(csv.strip().splitlines()) == 2 and not _mentions(csv, secret)
    for query in ("?q=neighbour", "?owner=owen", "?overdue=1"):
        assert not _mentions(client.get("/register" + query).get_data(as_text=True), secret)
