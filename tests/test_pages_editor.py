"""The editor's page and JSON endpoints (web/editor_pages.py), on a real database.

On SQLite and (when configured) PostgreSQL, with the policy's processes/ deployed.
"""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from engine import instances  # noqa: F401 - imported before register (import order)
from engine.db import unit_of_work
from engine.models import ProcessDefinition
from engine.settings import PROJECT_ROOT

from .conftest import FIXTURES
from .support import seeded_database, sign_in, test_app
from .test_drafts import MAIN, NOTE, STAGE, SYSTEM, THREE, TWO, scenario_counts

USERS = {"paul": ["staff", "process_owner"], "ada": ["admin"], "sam": ["staff"]}


@pytest.fixture
def db(db_url):
    return seeded_database(db_url, USERS, [PROJECT_ROOT / "processes"], SYSTEM)


@pytest.fixture
def app(db):
    return test_app()


def token_of(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def signed_in(app, username):
    client = sign_in(app.test_client(), username)
    client.csrf = token_of(client, "/")
    return client


def post(client, path, json=None, **kwargs):
    return client.post(path, json=json, headers={"X-CSRF-Token": client.csrf}, **kwargs)


@pytest.fixture
def paul(app):
    client = signed_in(app, "paul")
    response = client.post(f"/definitions/{MAIN}/draft", data={"csrf_token": client.csrf})
    assert response.status_code == 302
    return client


def files_of(client):
    response = client.get(f"/definitions/{MAIN}/draft.json")
    assert response.status_code == 200
    return response.get_json()["files"]


def save(client, changed):
    response = post(client, f"/definitions/{MAIN}/draft/files", {"changed": changed})
    assert response.status_code == 200, response.get_json()
    return response


def test_only_process_owners_and_admins_may_open_the_editor(app):
    staff = signed_in(app, "sam")
    assert staff.get(f"/definitions/{MAIN}/edit").status_code == 403
    assert staff.post(f"/definitions/{MAIN}/draft",
                      data={"csrf_token": staff.csrf}).status_code == 403
    assert post(staff, f"/definitions/{MAIN}/draft/validate").status_code == 403
    admin = signed_in(app, "ada")
    page = admin.get(f"/definitions/{MAIN}/edit").get_data(as_text=True)
    assert "Open version 1 in a draft" in page
    assert app.test_client().get(f"/definitions/{MAIN}/edit").status_code == 302  # sign in


def test_the_editor_page_loads_the_modeler_without_inline_script(paul):
    response = paul.get(f"/definitions/{MAIN}/edit")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "bpmn-modeler.production.min.js" in page and "editor.js" in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert paul.get("/definitions/no_such_process/edit").status_code == 404


def test_saving_needs_the_csrf_token_and_changes_nothing_without_it(paul):
    files = files_of(paul)
    response = paul.post(f"/definitions/{MAIN}/draft/files",
                         json={"changed": {STAGE: files[STAGE].replace(THREE, TWO)}})
    assert response.status_code == 400
    assert files_of(paul)[STAGE] == files[STAGE]


def test_a_bad_file_name_is_refused_with_the_reason(paul):
    response = post(paul, f"/definitions/{MAIN}/draft/files", {"changed": {"../x.bpmn": "x"}})
    assert response.status_code == 422
    assert "../x.bpmn" in response.get_json()["error"]["fields"]


def test_validation_lists_errors_with_the_element_to_mark(paul):
    files = files_of(paul)
    broken = re.sub(r'\s*default="no_sensitive_information"', "",
                    files["complaint_handling.bpmn"], count=1)
    save(paul, {"complaint_handling.bpmn": broken})
    body = post(paul, f"/definitions/{MAIN}/draft/validate").get_json()
    assert body["ok"] is False
    [problem] = body["problems"]
    assert problem["element_id"] == "no_sensitive_information"
    assert problem["file"] == "complaint_handling.bpmn" and problem["line"]
    assert "no condition" in problem["message"]


def test_scenarios_report_the_changed_deadline_then_pass_once_accepted(paul):
    save(paul, {STAGE: files_of(paul)[STAGE].replace(THREE, TWO)})
    body = post(paul, f"/definitions/{MAIN}/draft/scenarios").get_json()
    total, checked = scenario_counts()
    assert body["summary"] == f"{total - checked} passed, {checked} failed" and not body["ok"]
    failing = [r for r in body["results"] if not r["passed"]]
    for result in failing:
        [change] = result["deadline_changes"]
        response = post(paul, f"/definitions/{MAIN}/draft/accept-deadline",
                        {"file": result["file"], "deadline": change["deadline"],
                         "value": change["got"]})
        assert response.status_code == 200
    body = post(paul, f"/definitions/{MAIN}/draft/scenarios").get_json()
    assert body["summary"] == f"{total} passed, 0 failed" and body["ok"]


def test_the_difference_lists_the_changed_script(paul):
    save(paul, {STAGE: files_of(paul)[STAGE].replace(THREE, TWO)})
    body = paul.get(f"/definitions/{MAIN}/draft/diff").get_json()
    assert body["against_version"] == 1
    [change] = body["changes"]
    assert (change["category"], change["change"], change["element_id"]) == (
        "tasks", "changed", "set_logging_deadlines")


def test_deploying_a_failing_draft_or_without_a_note_is_refused(paul, db):
    save(paul, {STAGE: files_of(paul)[STAGE].replace(THREE, TWO)})
    response = post(paul, f"/definitions/{MAIN}/draft/deploy", {"change_note": NOTE})
    assert response.status_code == 422
    assert "scenarios" in response.get_json()["error"]["fields"]
    response = post(paul, f"/definitions/{MAIN}/draft/deploy", {"change_note": ""})
    assert response.status_code == 422
    assert "change_note" in response.get_json()["error"]["fields"]
    with unit_of_work(db, write=False) as uow:
        assert uow.session.scalars(select(ProcessDefinition.version).where(
            ProcessDefinition.process_id == MAIN)).all() == [1]


def test_deploy_with_a_note_makes_version_2(paul, db):
    save(paul, {STAGE: files_of(paul)[STAGE].replace(THREE, TWO)})
    for result in post(paul, f"/definitions/{MAIN}/draft/scenarios").get_json()["results"]:
        for change in result["deadline_changes"]:
            post(paul, f"/definitions/{MAIN}/draft/accept-deadline",
                 {"file": result["file"], "deadline": change["deadline"],
                  "value": change["got"]})
    response = post(paul, f"/definitions/{MAIN}/draft/deploy", {"change_note": NOTE})
    assert response.status_code == 200, response.get_json()
    assert {"process_id": MAIN, "version": 2, "changed": True} in response.get_json()["deployed"]
    with unit_of_work(db, write=False) as uow:
        row = uow.session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.process_id == MAIN, ProcessDefinition.version == 2)).one()
        assert (row.deployed_by, row.change_note) == ("paul", NOTE)
    assert paul.get(f"/definitions/{MAIN}/draft.json").status_code == 404  # draft closed


def test_the_form_preview_is_the_task_pages_form(paul):
    schema = files_of(paul)["forms/send_acknowledgement.json"]
    body = post(paul, "/definitions/form-preview", {"schema": schema}).get_json()
    assert body["ok"] and 'id="f-acknowledgement_channel"' in body["html"]
    body = post(paul, "/definitions/form-preview",
                {"schema": '{"type": "object", "properties": 3}'}).get_json()
    assert not body["ok"] and "not a valid JSON Schema" in body["problems"][0]


def test_a_foreign_file_is_imported_and_its_unsupported_elements_listed(paul):
    data = (FIXTURES / "miwg" / "A.2.0.bpmn").read_bytes()
    response = post(paul, f"/definitions/{MAIN}/draft/import",
                    data={"file": (io.BytesIO(data), "A.2.0.bpmn")},
                    content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["imported"] == "A.2.0.bpmn"
    assert body["problems"] and all(p["file"] == "A.2.0.bpmn" for p in body["problems"])
    assert [p["element_id"] for p in body["problems"] if "no condition" in p["message"]] == [
        "_f1478fb7-98c4-4c01-8c15-68bd04c91535", "_a1570a53-28d2-41b1-a3a2-3e50c00d747e",
        "_20ebb3c1-5178-4c7c-a91d-23e58f2aa73b"]
    assert "A.2.0.bpmn" in files_of(paul)


def test_discarding_the_draft(paul):
    response = paul.post(f"/definitions/{MAIN}/draft/discard", data={"csrf_token": paul.csrf})
    assert response.status_code == 302
    assert paul.get(f"/definitions/{MAIN}/draft.json").status_code == 404


def test_a_stage_page_says_which_processes_include_it(paul):
    page = paul.get("/definitions/receipt_and_logging/edit").get_data(as_text=True)
    assert 'id="included-in"' in page and "complaint_handling" in page
    page = paul.get(f"/definitions/{MAIN}/edit").get_data(as_text=True)
    assert 'id="included-in"' not in page


def test_without_a_draft_the_endpoints_answer_404_in_json(app):
    admin = signed_in(app, "ada")
    response = post(admin, f"/definitions/{MAIN}/draft/validate")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
