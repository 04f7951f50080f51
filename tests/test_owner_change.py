"""Changing the Complaint Owner of a running case (policy 5.2, 8.1), through the real
processes/, on SQLite and (when configured) PostgreSQL.

The complaint is policy scenario 12 (confidential information: a need-to-know case)
driven through the API until its owner owen has the investigation task open.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import worker
from engine.audit import Actor
from engine.calendar import parse_instant
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import AuditEvent, Complaint, HumanTask, OutboxMessage, User
from engine.owner_change import change_owner
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT
from engine.users import create_token, create_user
from web import create_app

from .test_web_api import PASSWORD, bearer

SCENARIO = json.loads((PROJECT_ROOT / "processes" / "tests" /
                       "12_confidential_information_without_personal_data.json").read_text())
USERS = {  # username: roles
    "sam": ["staff"],
    "olive": ["staff", "operations_director"],
    "quinn": ["staff", "quality_manager"],
    "isla": ["staff", "information_security_officer"],
    "owen": ["staff", "complaint_owner"],
    "olga": ["staff", "complaint_owner"],
    "ada": ["admin"],
}
EVERYONE = Actor("root", frozenset(ROLES))
QM = Actor("quinn", frozenset(USERS["quinn"]))
OD = Actor("olive", frozenset(USERS["olive"]))
INTAKE = ("channel", "complainant", "summary", "description", "product_or_service",
          "remedy_sought", "personal_data_involved")
REASON = "owen is on leave for a month"


class Case:
    def __init__(self, engine, client, tokens, reference):
        self.engine, self.client, self.tokens, self.reference = engine, client, tokens, reference

    def inbox(self, user):
        return self.client.get("/api/v1/tasks", headers=bearer(self.tokens[user])).get_json()

    def complete(self, user, bpmn_id, data):
        matching = [t for t in self.inbox(user) if t["bpmn_id"] == bpmn_id]
        assert matching, (user, bpmn_id, [t["bpmn_id"] for t in self.inbox(user)])
        done = self.client.post(f"/api/v1/tasks/{matching[0]['id']}/complete",
                                json={"data": data}, headers=bearer(self.tokens[user]))
        assert done.status_code == 200, done.get_json()
        while worker.run_once(self.engine):
            pass

    def record(self, user="quinn"):
        return self.client.get(f"/api/v1/complaints/{self.reference}",
                               headers=bearer(self.tokens[user]))

    def row(self) -> Complaint:
        with unit_of_work(self.engine, write=False) as uow:
            return uow.session.scalars(
                select(Complaint).where(Complaint.reference == self.reference)).one()

    def change(self, new_owner="olga", actor=QM, reason=REASON):
        with unit_of_work(self.engine) as uow:
            return change_owner(uow, self.reference, new_owner, reason, actor)


def step(bpmn_id):
    return next(s for s in SCENARIO["steps"] if s.get("task") == bpmn_id)


@pytest.fixture
def classified(db_url, manual_clock, monkeypatch):
    """Scenario 12 up to the Operations Director's "Assign a Complaint Owner"."""
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    engine = get_engine(db_url)
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", EVERYONE)
        assert result.ok, [str(p) for p in result.problems]
        tokens = {}
        for name, roles in USERS.items():
            create_user(uow.session, name, PASSWORD, roles, email=f"{name}@example.com")
            tokens[name] = create_token(uow.session, name)
    client = create_app({"SECRET_KEY": "test", "TESTING": True}).test_client()
    start = SCENARIO["start"]
    manual_clock.set(parse_instant(start["received_at"]) + timedelta(hours=1))
    body = {k: start[k] for k in INTAKE if k in start} | {"received_at": start["received_at"]}
    created = client.post("/api/v1/complaints", json=body, headers=bearer(tokens["sam"]))
    assert created.status_code == 201, created.get_json()
    made = Case(engine, client, tokens, created.get_json()["reference"])
    for bpmn_id, user in [("complete_register_record", "sam"), ("send_acknowledgement", "sam"),
                          ("record_key_details", "sam"),
                          ("confirm_classification", "olive")]:
        made.complete(user, bpmn_id, step(bpmn_id)["data"])
    return made


@pytest.fixture
def case(classified):
    """Scenario 12 up to owen's open investigation task."""
    made = classified
    made.complete("olive", "assign_complaint_owner", {"owner": "owen"})
    assessment = dict(step("assess_security_incident")["data"], need_to_know_users=[])
    made.complete("isla", "assess_security_incident", assessment)
    assert [t["bpmn_id"] for t in made.inbox("owen")] == ["investigate_complaint"]
    return made


def owner_tasks(case, user):
    return [t["bpmn_id"] for t in case.inbox(user)]


def test_the_open_owner_task_moves_to_the_new_owner_with_its_claim_released(case):
    task_id = case.inbox("owen")[0]["id"]
    claimed = case.client.post(f"/api/v1/tasks/{task_id}/claim",
                               headers=bearer(case.tokens["owen"]))
    assert claimed.status_code == 200, claimed.get_json()

    change = case.change()

    assert (change.old_owner, change.new_owner, change.moved_tasks) == ("owen", "olga",
                                                                         [task_id])
    assert owner_tasks(case, "owen") == []
    assert owner_tasks(case, "olga") == ["investigate_complaint"]
    with unit_of_work(case.engine, write=False) as uow:
        row = uow.session.get(HumanTask, task_id)
        assert (row.assignee, row.claimed_by) == ("olga", None)
        mails = uow.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "task_assigned", OutboxMessage.recipient == "olga")).all()
        assert len(mails) == 1 and mails[0].to_address == "olga@example.com"


def test_later_owner_tasks_go_to_the_new_owner(case):
    case.change()
    case.complete("olga", "investigate_complaint", step("investigate_complaint")["data"])
    assert owner_tasks(case, "olga") == ["record_findings"]
    case.complete("olga", "record_findings", step("record_findings")["data"])
    assert owner_tasks(case, "olga") == ["decide_corrective_action"]
    assert owner_tasks(case, "owen") == []


def test_the_register_shows_the_new_owner_and_keeps_it_after_later_steps(case):
    case.change()
    assert case.row().owner == "olga"
    assert case.record().get_json()["owner"] == "olga"
    case.complete("olga", "investigate_complaint", step("investigate_complaint")["data"])
    case.complete("olga", "record_findings", step("record_findings")["data"])
    assert case.row().owner == "olga"


def test_need_to_know_access_follows_the_owner(case):
    assert case.row().need_to_know
    assert case.record("owen").status_code == 200
    assert case.record("olga").status_code == 404
    case.change()
    assert case.record("olga").status_code == 200
    assert case.record("owen").status_code == 404  # the old owner loses access
    case.complete("olga", "investigate_complaint", step("investigate_complaint")["data"])
    assert case.record("owen").status_code == 404


def test_the_change_is_audited_with_both_owners_and_the_reason(case):
    case.change()
    with unit_of_work(case.engine, write=False) as uow:
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "owner_changed")).all()
    assert len(events) == 1
    assert events[0].actor == "quinn"
    details = events[0].details
    assert (details["from"], details["to"], details["reason"]) == ("owen", "olga", REASON)
    assert details["reference"] == case.reference


@pytest.mark.parametrize(("new_owner", "field_message"), [
    ("sam", "sam is not an active complaint owner"),
    ("nobody", "nobody is not an active complaint owner"),
    ("", "this field is required"),
    ("owen", "choose someone else"),
])
def test_only_another_active_complaint_owner_may_take_the_case(case, new_owner,
                                                               field_message):
    with pytest.raises(InvalidData) as caught:
        case.change(new_owner=new_owner)
    assert caught.value.fields == {"owner": [field_message]}
    assert case.row().owner == "owen"
    assert owner_tasks(case, "owen") == ["investigate_complaint"]


def test_an_inactive_complaint_owner_is_refused(case):
    with unit_of_work(case.engine) as uow:
        uow.session.scalars(select(User).where(User.username == "olga")).one().active = False
    with pytest.raises(InvalidData):
        case.change()


def test_a_reason_is_required(case):
    with pytest.raises(InvalidData) as caught:
        case.change(reason=" ")
    assert "reason" in caught.value.fields


@pytest.mark.parametrize("user", ["sam", "owen", "isla"])
def test_others_may_not_change_the_owner(case, user):
    with pytest.raises(Forbidden):
        case.change(actor=Actor(user, frozenset(USERS[user])))
    assert case.row().owner == "owen"


@pytest.mark.parametrize("actor", [OD, Actor("ada", frozenset({"admin"}))],
                         ids=["operations_director", "admin"])
def test_the_operations_director_and_admins_may_change_the_owner_of_a_case_they_see(
        case, actor):
    with pytest.raises(NotFound):  # need-to-know: they do not see it, so cannot change it
        case.change(actor=actor)
    with unit_of_work(case.engine) as uow:  # make it an ordinary case
        uow.session.scalars(select(Complaint).where(
            Complaint.reference == case.reference)).one().need_to_know = False
    assert case.change(actor=actor).new_owner == "olga"
    assert owner_tasks(case, "olga") == ["investigate_complaint"]


def test_a_closed_case_keeps_its_owner(case):
    with unit_of_work(case.engine) as uow:
        uow.session.scalars(select(Complaint).where(
            Complaint.reference == case.reference)).one().status = "closed"
    with pytest.raises(Conflict):
        case.change()


@pytest.mark.parametrize("owner", ["sam", "nobody"])
def test_the_first_owner_must_be_an_active_complaint_owner(classified, owner):
    task = next(t for t in classified.inbox("olive") if t["bpmn_id"] == "assign_complaint_owner")
    refused = classified.client.post(f"/api/v1/tasks/{task['id']}/complete",
                                     json={"data": {"owner": owner}},
                                     headers=bearer(classified.tokens["olive"]))
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["error"]["fields"] == {
        "owner": [f"{owner} is not an active complaint owner"]}
    assert classified.row().owner is None
    classified.complete("olive", "assign_complaint_owner", {"owner": "olga"})
    assert classified.row().owner == "olga"


def test_a_change_outside_a_task_counts_at_its_time_in_the_case_data():
    """engine.case_data.CASE_CHANGES: a later task's own change of a value wins over it,
    an earlier one does not."""
    import time

    from engine.case_data import CASE_CHANGES, case_data

    from .test_case_data import _complete, _workflow

    workflow = _workflow()
    _complete(workflow, "log", summary="Late parcel", status="logged")
    workflow.data[CASE_CHANGES] = [{"at": time.time(), "set": {"owner": "olga",
                                                               "status": "moved"}}]
    assert (case_data(workflow)["owner"], case_data(workflow)["status"]) == ("olga", "moved")
    # Task.last_state_change is wall-clock time too; on a tie the change counts first
    _complete(workflow, "acknowledge", status="acknowledged")
    data = case_data(workflow)
    assert (data["owner"], data["status"]) == ("olga", "acknowledged")
