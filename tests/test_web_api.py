"""The JSON API: health, authentication, the task endpoints, the error shape."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.audit import Actor
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.instances import start_instance
from engine.models import AuditEvent, HumanTask, ProcessDefinition, ProcessInstance
from engine.roles import ROLES
from engine.users import create_token
from web import create_app

from .support import seeded_database, test_app

PASSWORD = "correct horse battery"
FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
LOG_FORM = (FIXTURES / "engine" / "forms" / "log.json").read_text()
USERS = {"sam": ["staff"], "sue": ["staff"], "quinn": ["staff", "quality_manager"],
         "owen": ["staff", "complaint_owner"], "aud": ["auditor"]}


@pytest.fixture
def db(db_url):
    return seeded_database(db_url, USERS)


@pytest.fixture
def client(db):
    return test_app().test_client()


@pytest.fixture
def tokens(db):
    with unit_of_work(db) as uow:
        return {name: create_token(uow.session, name) for name in USERS}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def add_instance(db, status="running", sources=None) -> int:
    with unit_of_work(db) as uow:
        definition = ProcessDefinition(
            process_id=f"p{uuid.uuid4().hex[:8]}", version=1, name="P", sha256="0" * 64,
            sources=sources or {}, specs_json="{}", user_tasks=[], deployed_at=NOW)
        instance = ProcessInstance(definition=definition, process_id=definition.process_id,
                                   status=status,
                                   state="", created_at=NOW, updated_at=NOW)
        uow.session.add(instance)
        uow.session.flush()
        return instance.id


def add_task(db, instance_id, title, role="staff", assignee=None, state="ready",
             due_at=None, form=None) -> str:
    task_id = str(uuid.uuid4())
    with unit_of_work(db) as uow:
        uow.session.add(HumanTask(
            id=task_id, instance_id=instance_id, bpmn_id=title.lower().replace(" ", "_"),
            title=title, role=role, assignee=assignee, state=state, form=form,
            created_at=NOW, due_at=due_at))
    return task_id


def titles(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [t["title"] for t in response.get_json()]


# -- health and errors --------------------------------------------------------------------

def test_health_is_ok_when_the_database_answers(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_health_is_503_when_the_database_does_not_answer(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", f"sqlite:///{tmp_path}")  # a directory
    client = create_app({"SECRET_KEY": "test-secret"}).test_client()
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}


def test_unknown_api_routes_are_json_404(client, tokens):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/api/v1/nothing-here", headers=bearer(tokens["sam"])), 404,
                 "not_found")
    response = client.delete("/api/v1/tasks", headers=bearer(tokens["sam"]))
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


# -- authentication -----------------------------------------------------------------------

def test_the_api_needs_a_token_or_a_session(client, tokens):
    response = client.get("/api/v1/tasks")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/api/v1/tasks", headers=bearer("cmp_not-a-token")), 401,
                 "unauthorized")
    assert_error(client.get("/api/v1/tasks", headers={"Authorization": "Basic c2FtOng="}), 401,
                 "unauthorized")
    assert client.get("/api/v1/tasks", headers=bearer(tokens["sam"])).get_json() == []


def test_a_bearer_token_needs_no_csrf_token(client, db, tokens):
    task = add_task(db, add_instance(db), "Log")
    response = client.post(f"/api/v1/tasks/{task}/claim", headers=bearer(tokens["sam"]))
    assert response.status_code == 200
    assert response.get_json()["claimed_by"] == "sam"


def test_the_browser_session_works_for_the_api_with_csrf_on_changes(client, db):
    task = add_task(db, add_instance(db), "Log")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token})
    assert titles(client.get("/api/v1/tasks")) == ["Log"]

    assert_error(client.post(f"/api/v1/tasks/{task}/claim"), 400, "bad_request")
    home = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)
    response = client.post(f"/api/v1/tasks/{task}/claim", headers={"X-CSRF-Token": token})
    assert response.status_code == 200


def test_a_bad_bearer_token_is_not_rescued_by_the_session(client, db):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token})
    assert_error(client.get("/api/v1/tasks", headers=bearer("cmp_wrong")), 401, "unauthorized")


# -- listing ------------------------------------------------------------------------------

def test_the_task_list_holds_only_ready_tasks_of_my_roles_or_assigned_to_me(client, db, tokens):
    running = add_instance(db)
    add_task(db, running, "Log", due_at=NOW + timedelta(days=2))
    add_task(db, running, "Acknowledge", due_at=NOW + timedelta(days=1))
    add_task(db, running, "Review", role="quality_manager")
    add_task(db, running, "Investigate", role="complaint_owner", assignee="owen")
    add_task(db, running, "Investigate other", role="complaint_owner", assignee="olga")
    add_task(db, running, "Assigned to sam", role="complaint_owner", assignee="sam")
    add_task(db, running, "Done", state="completed")
    add_task(db, running, "Cancelled", state="cancelled")
    add_task(db, add_instance(db, status="error"), "Stuck")

    def listed(user):
        return titles(client.get("/api/v1/tasks", headers=bearer(tokens[user])))

    assert listed("sam") == ["Acknowledge", "Log", "Assigned to sam"]
    assert listed("quinn") == ["Acknowledge", "Log", "Review"]
    assert listed("owen") == ["Acknowledge", "Log", "Investigate"]
    assert listed("aud") == []


def test_a_listed_task_has_the_interface_fields(client, db, tokens):
    instance = add_instance(db)
    task = add_task(db, instance, "Log", due_at=NOW)
    (listed,) = client.get("/api/v1/tasks", headers=bearer(tokens["sam"])).get_json()
    assert listed == {"id": task, "instance_id": instance, "bpmn_id": "log", "title": "Log",
                      "role": "staff", "assignee": None, "claimed_by": None,
                      "due_at": "2026-07-01T12:00:00+00:00", "state": "ready",
                      "instructions": None}


# -- one task -----------------------------------------------------------------------------

def test_one_task_comes_with_its_form_as_json_schema(client, db, tokens):
    instance = add_instance(db, sources={"forms/log.json": LOG_FORM})
    with_form = add_task(db, instance, "Log", form="log.json")
    without = add_task(db, instance, "Acknowledge")

    body = client.get(f"/api/v1/tasks/{with_form}", headers=bearer(tokens["sam"])).get_json()
    assert body["id"] == with_form
    assert body["form"] == json.loads(LOG_FORM)
    body = client.get(f"/api/v1/tasks/{without}", headers=bearer(tokens["sam"])).get_json()
    assert body["form"] is None


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 300])
def test_an_unknown_task_is_404(client, tokens, task_id):
    headers = bearer(tokens["sam"])
    assert_error(client.get(f"/api/v1/tasks/{task_id}", headers=headers), 404, "not_found")
    for action in ("claim", "release", "complete"):
        response = client.post(f"/api/v1/tasks/{task_id}/{action}", headers=headers,
                               json={"data": {}})
        assert_error(response, 404, "not_found")


def test_a_task_of_another_role_is_404(client, db, tokens):
    task = add_task(db, add_instance(db), "Review", role="quality_manager")
    headers = bearer(tokens["sam"])
    assert_error(client.get(f"/api/v1/tasks/{task}", headers=headers), 404, "not_found")
    assert_error(client.post(f"/api/v1/tasks/{task}/claim", headers=headers), 404, "not_found")
    assert client.get(f"/api/v1/tasks/{task}", headers=bearer(tokens["quinn"])).status_code == 200


# -- claim and release --------------------------------------------------------------------

def test_a_task_claimed_by_one_user_cannot_be_claimed_by_another(client, db, tokens):
    task = add_task(db, add_instance(db), "Log")
    sam, sue = bearer(tokens["sam"]), bearer(tokens["sue"])
    assert client.post(f"/api/v1/tasks/{task}/claim", headers=sam).status_code == 200
    assert client.post(f"/api/v1/tasks/{task}/claim", headers=sam).status_code == 200
    error = assert_error(client.post(f"/api/v1/tasks/{task}/claim", headers=sue), 409,
                         "conflict")
    assert "claimed by sam" in error["message"]
    assert_error(client.post(f"/api/v1/tasks/{task}/release", headers=sue), 409, "conflict")

    released = client.post(f"/api/v1/tasks/{task}/release", headers=sam)
    assert released.status_code == 200
    assert released.get_json()["claimed_by"] is None
    response = client.post(f"/api/v1/tasks/{task}/claim", headers=sue)
    assert response.get_json()["claimed_by"] == "sue"


def test_the_engine_hears_the_callers_address(client, db, tokens):
    task = add_task(db, add_instance(db), "Log")
    client.post(f"/api/v1/tasks/{task}/claim", headers=bearer(tokens["sam"]),
                environ_base={"REMOTE_ADDR": "198.51.100.4"})
    with unit_of_work(db, write=False) as uow:
        event = uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "task_claimed")).one()
    assert (event.actor, event.address, event.task_id) == ("sam", "198.51.100.4", task)


# -- complete -----------------------------------------------------------------------------

def test_completing_a_task_that_is_no_longer_ready_is_409(client, db, tokens):
    task = add_task(db, add_instance(db), "Log", state="completed")
    response = client.post(f"/api/v1/tasks/{task}/complete", headers=bearer(tokens["sam"]),
                           json={"data": {}})
    error = assert_error(response, 409, "conflict")
    assert "no longer ready" in error["message"]


@pytest.mark.parametrize("body", ["{not json", "", "null", "[1, 2]", '"data"'])
def test_a_malformed_body_is_400(client, db, tokens, body):
    task = add_task(db, add_instance(db), "Log")
    response = client.post(f"/api/v1/tasks/{task}/complete", headers=bearer(tokens["sam"]),
                           data=body, content_type="application/json")
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize(("body", "field"), [
    ({}, "data"),
    ({"data": 5}, "data"),
    ({"data": ["a"]}, "data"),
    ({"data": {}, "extra": 1}, "extra"),
])
def test_a_body_without_a_data_object_is_422(client, db, tokens, body, field):
    task = add_task(db, add_instance(db), "Log")
    response = client.post(f"/api/v1/tasks/{task}/complete", headers=bearer(tokens["sam"]),
                           json=body)
    error = assert_error(response, 422, "invalid")
    assert list(error["fields"]) == [field]


@pytest.fixture
def started(db, manual_clock) -> int:
    everyone = Actor("root", frozenset(ROLES))
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, FIXTURES / "engine", everyone)
    assert result.ok, [str(p) for p in result.problems]
    with unit_of_work(db) as uow:
        data = {"received_at": manual_clock.now().isoformat(), "owner": "owen"}
        return start_instance(uow, "complaint_like", data, everyone).id


def test_completing_a_task_returns_the_cases_next_tasks(client, tokens, started):
    headers = bearer(tokens["sam"])
    (log,) = client.get("/api/v1/tasks", headers=headers).get_json()
    assert log["bpmn_id"] == "log"
    detail = client.get(f"/api/v1/tasks/{log['id']}", headers=headers).get_json()
    assert detail["form"]["required"] == ["summary"]

    response = client.post(f"/api/v1/tasks/{log['id']}/complete", headers=headers,
                           json={"data": {"summary": "Late delivery"}})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["instance"] == {"id": started, "status": "running"}
    assert [t["bpmn_id"] for t in body["next_tasks"]] == ["acknowledge"]

    again = client.post(f"/api/v1/tasks/{log['id']}/complete", headers=headers,
                        json={"data": {"summary": "Late delivery"}})
    assert_error(again, 409, "conflict")


def test_data_that_breaks_the_form_is_422_with_the_fields(client, tokens, started):
    headers = bearer(tokens["sam"])
    (log,) = client.get("/api/v1/tasks", headers=headers).get_json()
    response = client.post(f"/api/v1/tasks/{log['id']}/complete", headers=headers,
                           json={"data": {"summary": "", "status": "closed"}})
    error = assert_error(response, 422, "invalid")
    assert set(error["fields"]) == {"summary", "status"}
    assert client.get("/api/v1/tasks", headers=headers).get_json()[0]["id"] == log["id"]
