"""Policy 8.2: the users the Information Security Officer names in the security
assessment (``assess_security_incident.json#need_to_know_users``) are granted access
to the case when the assessment is completed, in its transaction, audited.

Driven through the deployed processes/ and the public API, on the path of scenario 12
(confidential information, need-to-know), on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import runtime
from engine.access_grants import revoke_access
from engine.audit import Actor
from engine.calendar import parse_instant
from engine.db import unit_of_work
from engine.models import AuditEvent, Complaint, ComplaintAccessGrant
from engine.need_to_know_grants import NAMED, REASON
from engine.permissions import may_see_complaint
from engine.settings import PROJECT_ROOT

from .test_api_policy_paths import INTAKE, ROLE_HOLDERS, _fire_due_timers, _user, world
from .test_web_api import bearer

__all__ = ["world"]  # the fixture, imported for pytest

SCENARIO = json.loads((PROJECT_ROOT / "processes" / "tests"
                       / "12_confidential_information_without_personal_data.json").read_text())
OWNER = "owen.owner"
ISO = ROLE_HOLDERS["information_security_officer"]


class Case:
    def __init__(self, world):
        self.engine, self.client, self.clock = world
        self.tokens = {role: _user(self.engine, name, ["staff", role] if role != "staff"
                                   else ["staff"]) for role, name in ROLE_HOLDERS.items()}
        self.tokens[OWNER] = _user(self.engine, OWNER, ["staff", "complaint_owner"])
        self.nina = _user(self.engine, "nina", ["staff"])  # to be named by the ISO
        self.sue = _user(self.engine, "sue", ["staff"])  # never named
        start = SCENARIO["start"]
        self.clock.set(parse_instant(start["received_at"]) + timedelta(hours=1))
        body = {k: start[k] for k in INTAKE if k in start}
        body["received_at"] = start["received_at"]
        created = self.client.post("/api/v1/complaints", json=body,
                                   headers=bearer(self.tokens["staff"]))
        assert created.status_code == 201, created.get_json()
        self.reference = created.get_json()["reference"]
        _fire_due_timers(self.engine)
        self.steps = iter(SCENARIO["steps"])

    def work(self, until: str, data: dict | None = None):
        """Complete the scenario's steps up to and including the task ``until``."""
        for step in self.steps:
            if "advance" in step:
                self.clock.advance(timedelta(**step["advance"]))
                _fire_due_timers(self.engine)
                continue
            token = self.tokens[step.get("expect_assignee") or step.get("expect_role")]
            inbox = self.client.get("/api/v1/tasks", headers=bearer(token)).get_json()
            task = next(t for t in inbox if t["bpmn_id"] == step["task"])
            done = self.client.post(f"/api/v1/tasks/{task['id']}/complete",
                                    json={"data": data if step["task"] == until and data
                                          is not None else step.get("data", {})},
                                    headers=bearer(token))
            assert done.status_code == 200, (step["task"], done.get_json())
            _fire_due_timers(self.engine)
            if step["task"] == until:
                return
        raise AssertionError(f"{until} is not a step of the scenario")

    def status(self, token: str) -> int:
        return self.client.get(f"/complaints/{self.reference}",
                               headers=bearer(token)).status_code

    def may_see(self, username: str, roles=frozenset({"staff"})) -> bool:
        with unit_of_work(self.engine, write=False) as uow:
            complaint = uow.session.scalars(
                select(Complaint).where(Complaint.reference == self.reference)).one()
            return may_see_complaint(Actor(username, roles), complaint)

    def events(self, action: str) -> list[AuditEvent]:
        with unit_of_work(self.engine, write=False) as uow:
            return list(uow.session.scalars(select(AuditEvent).where(
                AuditEvent.action == action).order_by(AuditEvent.id)))

    def grants(self) -> list[tuple[str, str, str, bool]]:
        with unit_of_work(self.engine, write=False) as uow:
            return [(g.username, g.granted_by, g.reason, g.revoked_at is None)
                    for g in uow.session.scalars(
                        select(ComplaintAccessGrant).order_by(ComplaintAccessGrant.id))]


def assessment(names: list[str]) -> dict:
    step = next(s for s in SCENARIO["steps"] if s.get("task") == "assess_security_incident")
    return {**step["data"], "need_to_know_users": names}


@pytest.fixture
def case(world):
    return Case(world)


def test_a_user_the_iso_names_in_the_assessment_sees_the_case(case):
    case.work("assign_complaint_owner")
    assert case.status(case.nina) == 404  # need-to-know before the assessment
    assert not case.may_see("nina")

    case.work("assess_security_incident", assessment(["nina"]))

    assert case.may_see("nina")
    assert case.status(case.nina) == 200
    listed = case.client.get("/register", headers=bearer(case.nina)).get_data(as_text=True)
    assert f'href="/complaints/{case.reference}"' in listed
    assert case.client.get(f"/api/v1/complaints/{case.reference}",
                           headers=bearer(case.nina)).status_code == 200
    # one not named still sees nothing of it
    assert case.status(case.sue) == 404
    assert not case.may_see("sue")


def test_the_grant_is_made_by_the_iso_and_audited(case):
    case.work("assess_security_incident", assessment(["nina"]))
    assert case.grants() == [("nina", ISO, REASON, True)]
    granted = case.events("access_granted")
    assert [(e.actor, e.details) for e in granted] == [
        (ISO, {"reference": case.reference, "username": "nina", "reason": REASON})]
    completed = [e for e in case.events("task_completed")
                 if e.details["bpmn_id"] == "assess_security_incident"]
    named = case.events(NAMED)
    assert [(e.actor, e.task_id, e.details) for e in named] == [
        (ISO, completed[0].task_id, {"reference": case.reference, "granted": ["nina"],
                                     "already": [], "not_granted": {}})]
    assert granted[0].instance_id == completed[0].instance_id  # on the case's trail
    trail = case.client.get(f"/complaints/{case.reference}",
                            headers=bearer(case.tokens["quality_manager"]))
    assert "Granted nina access to the case" in trail.get_data(as_text=True)


def test_an_unknown_username_is_recorded_as_not_granted_and_the_step_goes_on(case):
    case.work("assess_security_incident", assessment(["ghost", "nina"]))
    assert case.grants() == [("nina", ISO, REASON, True)]
    [named] = case.events(NAMED)
    assert named.details["granted"] == ["nina"]
    assert named.details["not_granted"] == {"ghost": "there is no user ghost"}
    assert case.status(case.nina) == 200


def test_a_user_who_already_has_access_keeps_one_grant(case):
    case.work("assign_complaint_owner")
    with unit_of_work(case.engine) as uow:
        from engine.access_grants import grant_access
        grant_access(uow.session, case.reference, "nina", "Handles the refund",
                     Actor(ISO, frozenset({"staff", "information_security_officer"})))
    case.work("assess_security_incident", assessment(["nina"]))
    assert case.grants() == [("nina", ISO, "Handles the refund", True)]
    [named] = case.events(NAMED)
    assert (named.details["granted"], named.details["already"]) == ([], ["nina"])


@pytest.mark.parametrize("cold", [False, True], ids=["cached", "reloaded"])
def test_a_revoked_grant_is_not_given_again_by_later_steps(case, cold):
    case.work("assess_security_incident", assessment(["nina"]))
    with unit_of_work(case.engine) as uow:
        revoke_access(uow.session, case.reference, "nina",
                      Actor(OWNER, frozenset({"staff", "complaint_owner"})))
    if cold:
        runtime.clear_caches()  # the next step loads the workflow from the database
    case.work("investigate_complaint")
    assert case.grants() == [("nina", ISO, REASON, False)]
    assert case.status(case.nina) == 404
    assert len(case.events(NAMED)) == 1


def test_an_assessment_naming_nobody_grants_nothing(case):
    case.work("assess_security_incident", assessment([]))
    assert case.grants() == []
    assert case.events(NAMED) == []
    assert case.status(case.nina) == 404


def test_the_timeline_says_who_was_given_access_and_who_was_not():
    from engine.models import AuditEvent
    from engine.register_queries import describe_event

    event = AuditEvent(action="need_to_know_named", details={
        "granted": ["fay"], "not_granted": {"ghost": "there is no user ghost"}})
    assert describe_event(event, {}) == (
        "Access given to the users named in the security assessment: fay; "
        "not granted: ghost (there is no user ghost)")
