"""The instance inspector pages (issue 6, parts 4 and 5): list, instance page, diagram JSON
and the confirmed, audited admin actions.

Runs on SQLite and (when configured) PostgreSQL. Pages are used as a browser uses them:
signed in with the session, every POST carrying the CSRF token of the page it came from.
"""

from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select

from engine import instances
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.models import AuditEvent, HumanTask, ProcessDefinition, ProcessInstance

from .conftest import FIXTURES
from .support import seeded_database, test_app
from .test_api_complaints import EVERYONE, USERS, body, complete
from .test_pages_inbox import csrf_token, sign_in
from .test_web_api import bearer

ADMINS = {"ada": ["admin"], "ivy": ["admin", "information_security_officer"]}


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, {**USERS, **ADMINS},
                           [FIXTURES / d for d in ("register", "engine", "engine_error")],
                           EVERYONE)


@pytest.fixture
def app(db):
    return test_app()


@pytest.fixture
def admin(app):
    return sign_in(app.test_client(), "ada")


def start(db, process_id, data):
    with unit_of_work(db) as uow:
        return instances.start_instance(uow, process_id, data, EVERYONE).id


def finish(db, instance_id, bpmn_id, data=None):
    with unit_of_work(db, write=False) as uow:
        task_id = uow.session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.bpmn_id == bpmn_id,
            HumanTask.state == "ready")).one()
    with unit_of_work(db) as uow:
        instances.complete_task(uow, task_id, data or {}, EVERYONE)


@pytest.fixture
def running(db, manual_clock):
    """A complaint_like instance at "Investigate", waiting on its overdue timer."""
    instance_id = start(db, "complaint_like", {"received_at": manual_clock.now().isoformat(),
                                               "owner": "owen"})
    finish(db, instance_id, "log", {"summary": "s"})
    finish(db, instance_id, "acknowledge")
    finish(db, instance_id, "classify", {"classification": "minor"})
    return instance_id


@pytest.fixture
def failed(db):
    instance_id = start(db, "failing_script", {"divisor": 0})
    finish(db, instance_id, "enter")
    return instance_id


def status_of(db, instance_id) -> str:
    with unit_of_work(db, write=False) as uow:
        return uow.session.get(ProcessInstance, instance_id).status


def actions_of(db, instance_id) -> list[str]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(AuditEvent.action).where(
            AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)))


def post_action(client, instance_id, action, **form):
    page = f"/admin/instances/{instance_id}/actions/{action}"
    data = {"csrf_token": csrf_token(client, page), **form}
    return client.post(page, data=data)


# -- access ---------------------------------------------------------------------------------

def test_the_inspector_is_for_admins_only(app, running):
    staff = sign_in(app.test_client(), "quinn")
    for path in ("/admin/instances", f"/admin/instances/{running}",
                 f"/admin/instances/{running}/diagram",
                 f"/admin/instances/{running}/actions/suspend"):
        assert staff.get(path).status_code == 403, path
    assert app.test_client().get("/admin/instances").status_code == 302  # to sign in


# -- the list -------------------------------------------------------------------------------

def test_instance_list_filters_by_status_and_timer(admin, running, failed):
    page = admin.get("/admin/instances").get_data(as_text=True)
    assert f"/admin/instances/{running}" in page and f"/admin/instances/{failed}" in page
    page = admin.get("/admin/instances?error=1").get_data(as_text=True)
    assert f"/admin/instances/{failed}\"" in page
    assert f"/admin/instances/{running}\"" not in page
    assert "division by zero" in page
    page = admin.get("/admin/instances?timer=1&process=complaint_like&version=1")
    text = page.get_data(as_text=True)
    assert f"/admin/instances/{running}\"" in text and f"/admin/instances/{failed}\"" not in text
    bad = admin.get("/admin/instances?status=sleeping&version=x")
    assert bad.status_code == 400
    assert "Choose one of" in bad.get_data(as_text=True)


# -- the instance page ----------------------------------------------------------------------

def test_instance_page_shows_tasks_timers_case_data_and_history(admin, running):
    page = admin.get(f"/admin/instances/{running}").get_data(as_text=True)
    assert "complaint_like v1" in page
    assert "Investigation overdue" in page
    assert "Thu 07 Jan 2027, 14:30" in page  # the timer's due time, London
    assert "Investigate" in page and "Reassign" in page
    assert "&#34;classification&#34;: &#34;minor&#34;" in page  # the case data
    assert "task completed" in page  # the history
    assert 'data-diagram-url="/admin/instances/' in page
    assert "bpmn-navigated-viewer.production.min.js" in page


def test_diagram_json_marks_completed_active_and_waiting_elements(admin, running):
    data = admin.get(f"/admin/instances/{running}/diagram").get_json()
    [diagram] = data["diagrams"]
    assert data["states"] == ["completed", "waiting", "active", "errored"]
    assert diagram["process_id"] == "complaint_like"
    assert diagram["xml"].startswith("<?xml")
    assert diagram["active"] == ["investigate"]
    assert diagram["waiting"] == ["investigate_overdue"]
    assert {"log", "acknowledge", "classify"} <= set(diagram["completed"])


def test_personal_data_is_masked_for_an_admin_without_need_to_know(app, db):
    sam = {"Authorization": bearer_token(db, "sam")["Authorization"]}
    client = app.test_client()
    response = client.post("/api/v1/complaints", headers=sam, json=body(
        complainant={"name": "Zed Private", "email": "zed@example.org"}))
    complaint = response.get_json()
    auth = {"sam": sam}
    complete(db, client, auth, complaint, "log",
             {"owner": "owen", "personal_data_involved": True}, "sam")
    path = f"/admin/instances/{complaint['instance_id']}"
    ada = sign_in(app.test_client(), "ada").get(path).get_data(as_text=True)
    assert "Zed Private" not in ada and "zed@example.org" not in ada
    assert "(withheld)" in ada and "personal data is withheld" in ada
    ivy = sign_in(app.test_client(), "ivy").get(path).get_data(as_text=True)
    assert "Zed Private" in ivy and "(withheld)" not in ivy
    with unit_of_work(db, write=False) as uow:
        reads = uow.session.scalars(select(AuditEvent.actor).where(
            AuditEvent.action == "complaint_read")).all()
    assert sorted(reads) == ["ada", "ivy"]


def bearer_token(db, username):
    from engine.users import create_token
    with unit_of_work(db) as uow:
        return bearer(create_token(uow.session, username))


# -- actions --------------------------------------------------------------------------------

def test_an_action_needs_the_csrf_token(admin, db, running):
    response = admin.post(f"/admin/instances/{running}/actions/suspend",
                          data={"reason": "Pause it please", "confirm": "yes"})
    assert response.status_code == 400
    assert status_of(db, running) == instances.RUNNING


def test_an_action_needs_confirmation_and_a_reason(admin, db, running):
    response = post_action(admin, running, "suspend", reason="")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Tick the box to confirm" in text and "at least 5 characters" in text
    assert status_of(db, running) == instances.RUNNING


def test_suspend_then_resume_from_the_pages_is_audited(admin, db, running):
    confirm = admin.get(f"/admin/instances/{running}/actions/suspend").get_data(as_text=True)
    assert "To undo it: Resume the instance." in confirm
    response = post_action(admin, running, "suspend", reason="Complainant asked to wait",
                           confirm="yes")
    assert response.status_code == 302
    assert status_of(db, running) == instances.SUSPENDED
    page = admin.get(f"/admin/instances/{running}").get_data(as_text=True)
    assert "The instance is suspended." in page and "Resume" in page
    post_action(admin, running, "resume", reason="They wrote back", confirm="yes")
    assert status_of(db, running) == instances.RUNNING
    assert actions_of(db, running)[-2:] == ["instance_suspended", "instance_resumed"]


def test_terminate_page_says_it_cannot_be_undone(admin, db, running):
    confirm = admin.get(f"/admin/instances/{running}/actions/terminate").get_data(as_text=True)
    assert "This cannot be undone." in confirm
    post_action(admin, running, "terminate", reason="Duplicate complaint", confirm="yes")
    assert status_of(db, running) == instances.TERMINATED


def test_retry_page_corrects_the_failed_task_data(admin, db, failed):
    confirm = admin.get(f"/admin/instances/{failed}/actions/retry").get_data(as_text=True)
    assert "Divide by zero" in confirm
    assert re.search(r'<textarea id="a-data"[^>]*>[^<]*&#34;divisor&#34;: 0', confirm)
    bad = post_action(admin, failed, "retry", reason="Fix the divisor", confirm="yes",
                      data='{"divisor": 2')
    assert bad.status_code == 422
    assert "line 1, column 14: Expecting" in bad.get_data(as_text=True)
    assert status_of(db, failed) == instances.ERROR
    done = post_action(admin, failed, "retry", reason="Fix the divisor", confirm="yes",
                       data='{"divisor": 2}')
    assert done.status_code == 302
    assert status_of(db, failed) == instances.RUNNING
    with unit_of_work(db, write=False) as uow:
        assert uow.session.scalars(select(HumanTask.bpmn_id).where(
            HumanTask.instance_id == failed, HumanTask.state == "ready")).all() == ["after"]


def test_reassign_page_gives_the_task_to_another_user(admin, db, running):
    with unit_of_work(db, write=False) as uow:
        task_id = uow.session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == running, HumanTask.state == "ready")).one()
    path = f"/admin/instances/{running}/tasks/{task_id}/reassign"
    refused = admin.post(path, data={"csrf_token": csrf_token(admin, path), "target": "user",
                                     "assignee": "nobody", "reason": "Owen is away",
                                     "confirm": "yes"})
    assert refused.status_code == 422
    assert "there is no active user &#39;nobody&#39;" in refused.get_data(as_text=True)
    response = admin.post(path, data={"csrf_token": csrf_token(admin, path), "target": "user",
                                      "assignee": "sue", "reason": "Owen is away",
                                      "confirm": "yes"})
    assert response.status_code == 302
    with unit_of_work(db, write=False) as uow:
        assert uow.session.get(HumanTask, task_id).assignee == "sue"


def deploy_v2(db, tmp_path, old: str, new: str) -> int:
    shutil.copytree(FIXTURES / "engine", tmp_path / "v2")
    bpmn = tmp_path / "v2" / "complaint_like.bpmn"
    bpmn.write_text(bpmn.read_text().replace(old, new))
    with unit_of_work(db) as uow:
        assert deploy_directory(uow.session, tmp_path / "v2", EVERYONE).ok
        return uow.session.scalars(select(ProcessDefinition.id).where(
            ProcessDefinition.process_id == "complaint_like",
            ProcessDefinition.version == 2)).one()


def test_migration_page_moves_to_a_safe_version_after_confirmation(admin, db, running,
                                                                    tmp_path):
    new_id = deploy_v2(db, tmp_path, 'name="Resolve"', 'name="Resolve the complaint"')
    page = admin.get(f"/admin/instances/{running}/actions/migrate?definition={new_id}")
    text = page.get_data(as_text=True)
    assert "Moving to v2" in text and "This cannot be undone." in text
    assert "&#34;Resolve&#34; (resolve)" in text  # what changes for this instance
    response = post_action(admin, running, "migrate", definition=str(new_id),
                           reason="Policy changed", confirm="yes")
    assert response.status_code == 302
    with unit_of_work(db, write=False) as uow:
        assert uow.session.get(ProcessInstance, running).definition.version == 2
    assert actions_of(db, running)[-1] == "instance_migrated"


def test_migration_page_refuses_an_unsafe_version_with_the_reason(admin, db, running, tmp_path):
    new_id = deploy_v2(db, tmp_path, 'name="Log the complaint"', 'name="Record the complaint"')
    page = admin.get(f"/admin/instances/{running}/actions/migrate?definition={new_id}")
    text = page.get_data(as_text=True)
    assert "It cannot move to v2" in text
    assert "&#34;Log the complaint&#34; (log)" in text and "completed" in text
    assert 'name="confirm"' not in text
    forced = post_action(admin, running, "migrate", definition=str(new_id),
                         reason="Policy changed", confirm="yes")
    assert forced.status_code == 422
    with unit_of_work(db, write=False) as uow:
        assert uow.session.get(ProcessInstance, running).definition.version == 1


def test_a_failed_instance_shows_its_error_and_marks_the_failed_element(admin, db, failed):
    page = admin.get(f"/admin/instances/{failed}").get_data(as_text=True)
    assert "In error" in page and "division by zero" in page
    assert "Retry the failed task" in page and "Suspend" not in page
    [diagram] = admin.get(f"/admin/instances/{failed}/diagram").get_json()["diagrams"]
    assert (diagram["errored"], diagram["active"]) == (["divide"], [])
    post_action(admin, failed, "terminate", reason="Test case, not real", confirm="yes")
    ended = admin.get(f"/admin/instances/{failed}").get_data(as_text=True)
    assert "This instance has ended; nothing can be done to it." in ended
    assert "Reassign" not in ended
