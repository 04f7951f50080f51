"""The API of the register, instances, definitions and the OpenAPI document.

Every test runs on SQLite and (when configured) on PostgreSQL.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.audit import Actor
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.instances import start_instance
from engine.models import AuditEvent, HumanTask, ProcessDefinition
from engine.roles import ROLES
from engine.users import create_token

from .conftest import FIXTURES
from .support import seeded_database, test_app
from .test_web_api import assert_error, bearer

USERS = {
    "sam": ["staff"],
    "sue": ["staff"],
    "quinn": ["staff", "quality_manager"],
    "isla": ["staff", "information_security_officer"],
    "owen": ["staff", "complaint_owner"],
    "aud": ["auditor"],
    "ada": ["admin"],
    "pat": ["process_owner"],
}
EVERYONE = Actor("root", frozenset(ROLES))
COMPLAINT_KEYS = {
    "reference", "channel", "received_at", "complainant", "summary", "description",
    "product_or_service", "remedy_sought", "classification", "personal_data_involved",
    "data_breach", "owner", "root_cause", "corrective_action", "remedial_measures",
    "resolution_summary", "status", "deadlines", "logged_at", "acknowledged_at",
    "resolved_at", "closed_at", "need_to_know", "instance_id", "created_at", "updated_at",
    "personal_data_withheld",
}


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)  # no test here signs in by password
    return seeded_database(db_url, USERS, [FIXTURES / "register"], EVERYONE)


@pytest.fixture
def client(db):
    return test_app().test_client()


@pytest.fixture
def auth(db):
    with unit_of_work(db) as uow:
        tokens = {name: create_token(uow.session, name) for name in USERS}
    return {name: bearer(token) for name, token in tokens.items()}


def body(**changes):
    data = {
        "channel": "email",
        "complainant": {"name": "Ann Example", "email": "ann@example.org"},
        "summary": "Parcel arrived broken",
        "description": "The parcel was crushed.",
    }
    data.update(changes)
    return data


def post(client, auth, user="sam", **changes) -> dict:
    response = client.post("/api/v1/complaints", headers=auth[user], json=body(**changes))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def complete(db, client, auth, complaint, bpmn_id, data, user):
    with unit_of_work(db, write=False) as uow:
        task_id = uow.session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == complaint["instance_id"], HumanTask.bpmn_id == bpmn_id,
            HumanTask.state == "ready")).one()
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=auth[user],
                           json={"data": data})
    assert response.status_code == 200, response.get_data(as_text=True)


def listed(client, auth, user="sam", **params) -> dict:
    response = client.get("/api/v1/complaints", headers=auth[user], query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def references(page: dict) -> list[str]:
    return [item["reference"] for item in page["items"]]


def reads(db) -> list[tuple]:
    with unit_of_work(db, write=False) as uow:
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "complaint_read").order_by(AuditEvent.id)).all()
    return [(e.actor, e.address, e.details["reference"], e.details["via"]) for e in events]


# -- POST /complaints -----------------------------------------------------------------------

def test_recording_a_complaint_returns_the_record(client, auth, manual_clock):
    response = client.post("/api/v1/complaints", headers=auth["sam"], json=body(
        received_at="2026-12-21T09:00:00+00:00", product_or_service="Vases"))
    assert response.status_code == 201, response.get_data(as_text=True)
    record = response.get_json()
    assert set(record) == COMPLAINT_KEYS | {"deadline_states"}
    assert response.headers["Location"].endswith("/api/v1/complaints/CMP-2026-000001")
    assert record["reference"] == "CMP-2026-000001"
    assert record["received_at"] == "2026-12-21T09:00:00+00:00"
    assert record["complainant"] == {"name": "Ann Example", "email": "ann@example.org",
                                     "phone": None, "postal_address": None}
    assert record["status"] == "received"
    assert record["deadlines"] == {"log_by": "2026-12-22T09:00:00+00:00",
                                   "acknowledge_by": "2026-12-24T09:00:00+00:00"}
    assert record["logged_at"] is None
    assert record["need_to_know"] is False
    assert record["created_at"] == "2026-12-21T14:30:00+00:00"
    assert isinstance(record["instance_id"], int)
    same = client.get(response.headers["Location"], headers=auth["sue"])
    assert same.get_json() == record


def test_received_at_defaults_to_now(client, auth, manual_clock):
    assert post(client, auth)["received_at"] == "2026-12-21T14:30:00+00:00"


@pytest.mark.parametrize(("received_at", "message"), [
    ("2026-12-22T09:00:00+00:00", "received_at is in the future"),
    ("21/12/2026 09:00", "not an ISO-8601 date and time"),
    ("2026-12-21T09:00:00", "give the time zone"),
])
def test_a_bad_received_at_is_422_naming_the_field(client, auth, received_at, message):
    response = client.post("/api/v1/complaints", headers=auth["sam"],
                           json=body(received_at=received_at))
    error = assert_error(response, 422, "invalid")
    assert list(error["fields"]) == ["received_at"]
    assert message in error["fields"]["received_at"][0]


def test_missing_and_unknown_fields_are_422_naming_each(client, auth):
    response = client.post("/api/v1/complaints", headers=auth["sam"],
                           json={"complainant": {}, "owner": "sam"})
    error = assert_error(response, 422, "invalid")
    assert set(error["fields"]) == {"channel", "summary", "description", "complainant.name",
                                    "owner"}


@pytest.mark.parametrize("payload", ["{not json", "", "[1]", '"x"'])
def test_a_malformed_body_is_400(client, auth, payload):
    response = client.post("/api/v1/complaints", headers=auth["sam"], data=payload,
                           content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_recording_needs_the_staff_role(client, auth):
    assert_error(client.post("/api/v1/complaints", headers=auth["aud"], json=body()), 403,
                 "forbidden")
    assert_error(client.post("/api/v1/complaints", json=body()), 401, "unauthorized")
    assert listed(client, auth, "sam")["total"] == 0


# -- GET /complaints ------------------------------------------------------------------------

@pytest.fixture
def register(db, client, auth, manual_clock):
    """Four complaints received on four days, with different fields set."""
    now = manual_clock.now()
    made = {}
    for days, name, channel, summary in [
        (4, "Ann Able", "email", "Late delivery"),
        (3, "Bob Baker", "letter", "Rude driver"),
        (2, "Cat O'Hara", "telephone", "Wrong size 100%_cotton"),
        (1, "Dan Dunn", "email", "Refund not received"),
    ]:
        received = (now - timedelta(days=days)).isoformat()
        made[name] = post(client, auth, received_at=received, channel=channel,
                          summary=summary, complainant={"name": name})
    complete(db, client, auth, made["Bob Baker"], "log",
             {"owner": "owen", "personal_data_involved": False}, "sam")
    complete(db, client, auth, made["Bob Baker"], "classify", {"classification": "major"},
             "quinn")
    return made


def test_the_register_lists_newest_receipt_first_with_paging(client, auth, register):
    page = listed(client, auth)
    assert page["total"] == 4
    assert (page["page"], page["per_page"]) == (1, 25)
    assert [i["complainant"]["name"] for i in page["items"]] == [
        "Dan Dunn", "Cat O'Hara", "Bob Baker", "Ann Able"]
    assert set(page["items"][0]) == COMPLAINT_KEYS

    second = listed(client, auth, page=2, per_page=3)
    assert (second["page"], second["per_page"], second["total"]) == (2, 3, 4)
    assert [i["complainant"]["name"] for i in second["items"]] == ["Ann Able"]
    assert listed(client, auth, page=3, per_page=3)["items"] == []


def test_the_register_filters_by_status_classification_and_channel(client, auth, register):
    bob = register["Bob Baker"]["reference"]
    assert references(listed(client, auth, status="investigating")) == [bob]
    assert references(listed(client, auth, classification="major")) == [bob]
    assert [i["complainant"]["name"] for i in listed(client, auth, channel="email")["items"]] \
        == ["Dan Dunn", "Ann Able"]
    page = listed(client, auth, status="received", channel="email")
    assert page["total"] == 2
    assert listed(client, auth, status="", classification="", q="")["total"] == 4
    assert listed(client, auth, channel="in_person") == {"items": [], "page": 1,
                                                         "per_page": 25, "total": 0}


@pytest.mark.parametrize(("q", "names"), [
    ("REFUND", ["Dan Dunn"]),
    ("baker", ["Bob Baker"]),
    ("cmp-2026-000001", ["Ann Able"]),
    ("o'hara", ["Cat O'Hara"]),
    ("100%_", ["Cat O'Hara"]),
    ("%", ["Cat O'Hara"]),  # taken literally, not as a wildcard
    ("_", ["Cat O'Hara"]),
    ("1%", []),
    ("e", ["Dan Dunn", "Cat O'Hara", "Bob Baker", "Ann Able"]),
])
def test_q_searches_reference_summary_and_name_ignoring_case(client, auth, register, q, names):
    assert [i["complainant"]["name"] for i in listed(client, auth, q=q)["items"]] == names


@pytest.mark.parametrize(("params", "field"), [
    ({"per_page": 101}, "per_page"),
    ({"per_page": 0}, "per_page"),
    ({"page": 0}, "page"),
    ({"page": "two"}, "page"),
    ({"status": "lost"}, "status"),
    ({"classification": "huge"}, "classification"),
    ({"channel": "fax"}, "channel"),
    ({"sort": "name"}, "sort"),
])
def test_bad_register_parameters_are_422(client, auth, params, field):
    response = client.get("/api/v1/complaints", headers=auth["sam"], query_string=params)
    assert list(assert_error(response, 422, "invalid")["fields"]) == [field]


def test_an_unknown_reference_is_404(client, auth):
    assert_error(client.get("/api/v1/complaints/CMP-2026-999999", headers=auth["sam"]), 404,
                 "not_found")
    assert_error(client.get("/api/v1/complaints/" + "x" * 300, headers=auth["sam"]), 404,
                 "not_found")


# -- need to know ---------------------------------------------------------------------------

@pytest.fixture
def secret(db, client, auth):
    """An ordinary complaint and a need-to-know one owned by owen."""
    post(client, auth, summary="Ordinary")
    complaint = post(client, auth, user="sue", summary="Account details sent to a stranger")
    complete(db, client, auth, complaint, "log",
             {"owner": "owen", "personal_data_involved": True}, "sue")
    return complaint["reference"]


def test_a_need_to_know_complaint_is_hidden_from_everyone_else(client, auth, secret):
    # (The auditor sees it with the personal data withheld: tests/test_api_auditor.py.)
    for user in ("sam", "sue", "ada"):
        page = listed(client, auth, user)
        assert references(page) == ["CMP-2026-000001"], user
        assert page["total"] == 1
        assert listed(client, auth, user, q="stranger")["total"] == 0
        assert_error(client.get(f"/api/v1/complaints/{secret}", headers=auth[user]), 404,
                     "not_found")


@pytest.mark.parametrize("user", ["owen", "quinn", "isla"])
def test_the_owner_the_iso_and_the_qm_see_a_need_to_know_complaint(client, auth, secret, user):
    page = listed(client, auth, user)
    assert references(page) == [secret, "CMP-2026-000001"]
    assert page["total"] == 2
    record = client.get(f"/api/v1/complaints/{secret}", headers=auth[user]).get_json()
    assert (record["need_to_know"], record["personal_data_involved"]) == (True, True)


def test_reading_a_need_to_know_complaint_is_audited(client, auth, secret, db):
    client.get(f"/api/v1/complaints/{secret}", headers=auth["owen"],
               environ_base={"REMOTE_ADDR": "198.51.100.7"})
    listed(client, auth, "quinn")
    client.get("/api/v1/complaints/CMP-2026-000001", headers=auth["owen"])
    client.get(f"/api/v1/complaints/{secret}", headers=auth["sam"])  # 404: nothing read
    assert reads(db) == [("owen", "198.51.100.7", secret, "record"),
                         ("quinn", "127.0.0.1", secret, "register")]


# -- GET /instances/{id} --------------------------------------------------------------------

def test_an_instance_shows_definition_tasks_timers_and_history_to_admins(
        client, auth, db, manual_clock):
    with unit_of_work(db) as uow:
        assert deploy_directory(uow.session, FIXTURES / "engine", EVERYONE).ok
    with unit_of_work(db) as uow:
        instance_id = start_instance(uow, "complaint_like", {
            "received_at": "2026-12-21T14:30:00+00:00", "owner": "owen"}, EVERYONE).id
    for bpmn_id, data in [("log", {"summary": "s"}), ("acknowledge", {}),
                          ("classify", {"classification": "minor"})]:
        complete(db, client, auth, {"instance_id": instance_id}, bpmn_id, data, "sam")

    response = client.get(f"/api/v1/instances/{instance_id}", headers=auth["ada"])
    assert response.status_code == 200, response.get_data(as_text=True)
    instance = response.get_json()
    assert (instance["id"], instance["process_id"], instance["version"], instance["status"]) \
        == (instance_id, "complaint_like", 1, "running")
    assert instance["error"] is None
    assert instance["reference"] is None
    states = {t["bpmn_id"]: t["state"] for t in instance["tasks"]}
    assert states["log"] == "COMPLETED"
    assert states["investigate"] == "READY"
    investigate = next(t for t in instance["tasks"] if t["bpmn_id"] == "investigate")
    assert (investigate["name"], investigate["type"]) == ("Investigate", "User Task")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00",
                        investigate["last_state_change"])
    # 10 business days after Monday 21 December 2026 (Christmas and Boxing Day skipped).
    assert instance["timers"] == [{
        "task_id": instance["timers"][0]["task_id"], "bpmn_id": "investigate_overdue",
        "name": "Investigation overdue", "type": "TimeDateEventDefinition",
        "due_at": "2027-01-07T14:30:00+00:00"}]
    actions = [e["action"] for e in instance["history"]]
    assert actions[0] == "instance_started"
    assert actions.count("task_completed") == 3
    assert instance["history"][1]["at"] == "2026-12-21T14:30:00+00:00"


def test_an_instance_in_error_shows_the_error(client, auth, db, manual_clock):
    with unit_of_work(db) as uow:
        assert deploy_directory(uow.session, FIXTURES / "engine_error", EVERYONE).ok
    with unit_of_work(db) as uow:
        instance_id = start_instance(uow, "failing_script", {}, EVERYONE).id
    complete(db, client, auth, {"instance_id": instance_id}, "enter", {}, "sam")
    instance = client.get(f"/api/v1/instances/{instance_id}", headers=auth["ada"]).get_json()
    assert instance["status"] == "error"
    assert instance["error"]["bpmn_id"] == "divide"
    assert "divisor" in instance["error"]["message"]
    assert {t["bpmn_id"]: t["state"] for t in instance["tasks"]}["divide"] == "ERROR"
    assert [e["action"] for e in instance["history"]][-1] == "instance_error"


def test_instances_are_for_admins_only(client, auth, secret, db):
    path = "/api/v1/instances/1"
    for user in ("sam", "quinn", "pat", "aud"):
        assert_error(client.get(path, headers=auth[user]), 403, "forbidden")
    assert_error(client.get("/api/v1/instances/999", headers=auth["ada"]), 404, "not_found")
    assert_error(client.get("/api/v1/instances/abc", headers=auth["ada"]), 404, "not_found")


def test_an_admin_does_not_see_the_case_data_of_a_need_to_know_complaint(client, auth, secret,
                                                                         db):
    with unit_of_work(db, write=False) as uow:
        instance_id = uow.session.scalars(select(HumanTask.instance_id).where(
            HumanTask.bpmn_id == "assess")).one()
    history = client.get(f"/api/v1/instances/{instance_id}",
                         headers=auth["ada"]).get_json()["history"]
    completed = next(e for e in history if e["action"] == "task_completed")
    assert "data" not in completed["details"]
    assert completed["details"]["withheld"] == "need-to-know case data"
    assert completed["details"]["bpmn_id"] == "log"


# -- POST /definitions ----------------------------------------------------------------------

def upload(client, headers, files: dict[str, bytes], **form):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()], **form}
    return client.post("/api/v1/definitions", headers=headers, data=data,
                       content_type="multipart/form-data")


def complaint_like_files() -> dict[str, bytes]:
    engine_dir = FIXTURES / "engine"
    return {
        "complaint_like.bpmn": (engine_dir / "complaint_like.bpmn").read_bytes(),
        "log.json": (engine_dir / "forms" / "log.json").read_bytes(),
        "classify.json": (engine_dir / "forms" / "classify.json").read_bytes(),
    }


def definition_count(db) -> int:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(ProcessDefinition))


def test_uploading_definitions_deploys_them(client, auth, db):
    response = upload(client, auth["pat"], complaint_like_files(), change_note="first")
    assert response.status_code == 201, response.get_data(as_text=True)
    (deployed,) = response.get_json()
    assert (deployed["process_id"], deployed["version"], deployed["changed"]) == (
        "complaint_like", 1, True)
    assert re.fullmatch(r"[0-9a-f]{64}", deployed["sha256"])

    again = upload(client, auth["ada"], complaint_like_files())
    assert again.status_code == 201
    assert again.get_json() == [{**deployed, "changed": False}]
    with unit_of_work(db, write=False) as uow:
        note = uow.session.scalars(select(ProcessDefinition.change_note).where(
            ProcessDefinition.process_id == "complaint_like")).one()
    assert note == "first"


def test_broken_definitions_are_422_with_file_and_line_and_deploy_nothing(client, auth, db):
    before = definition_count(db)
    files = complaint_like_files()
    files["broken.bpmn"] = b"<bpmn:definitions xmlns:bpmn='x'>\n<unclosed>\n"
    response = upload(client, auth["pat"], files)
    error = assert_error(response, 422, "invalid")
    assert list(error["fields"]) == ["files"]
    assert any(re.match(r"broken\.bpmn:\d+: ", line) for line in error["fields"]["files"]), \
        error["fields"]["files"]
    assert definition_count(db) == before


def test_an_upload_without_files_is_422(client, auth):
    error = assert_error(upload(client, auth["pat"], {}), 422, "invalid")
    assert list(error["fields"]) == ["files"]
    response = client.post("/api/v1/definitions", headers=auth["pat"], json={"files": []})
    assert list(assert_error(response, 422, "invalid")["fields"]) == ["files"]


def test_uploading_definitions_needs_the_process_owner_role(client, auth, db):
    before = definition_count(db)
    for user in ("sam", "quinn", "aud"):
        assert_error(upload(client, auth[user], complaint_like_files()), 403, "forbidden")
    assert definition_count(db) == before


# -- OpenAPI --------------------------------------------------------------------------------

def _api_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len("/api/v1"):])
        routes.setdefault(path, set()).update(
            m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_the_openapi_document_describes_every_route_and_nothing_else(client):
    response = client.get("/api/v1/openapi.json")  # no authentication needed
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    described = {path: set(ops) for path, ops in document["paths"].items()}
    assert described == _api_routes(client.application)


def test_every_openapi_operation_has_responses_and_resolvable_references(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "fields"]

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(document)):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][section], ref
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (method, path)
            if method == "post" and path in ("/complaints", "/tasks/{task_id}/complete",
                                             "/definitions"):
                assert operation["requestBody"]["required"] is True
