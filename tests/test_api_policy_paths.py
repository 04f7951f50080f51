"""Every policy path through the public API: record, work every task, let timers fire.

Each scenario in processes/tests is replayed against the deployed processes/: the
complaint is posted with ``received_at`` in the past, every step is a task that the
user holding its role finds in their inbox (``GET /tasks``) and completes
(``POST /tasks/{id}/complete``), clock jumps are handed to the deadline worker, and the
record (``GET /complaints/{reference}``) must end in the scenario's status with its
deadlines on it. Runs on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import worker
from engine.audit import Actor
from engine.calendar import parse_instant
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.models import OutboxMessage
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT
from engine.users import create_token, create_user
from web import create_app

from .test_web_api import PASSWORD, bearer

SCENARIOS = sorted(
    p for p in (PROJECT_ROOT / "processes" / "tests").glob("*.json")
    if json.loads(p.read_text())["process"] == "complaint_handling"
)
ROLE_HOLDERS = {
    "staff": "sam",
    "operations_director": "olive",
    "quality_manager": "quinn",
    "information_security_officer": "isla",
    "senior_management": "sofia",
    "process_owner": "paul",
}
EVERYONE = Actor("root", frozenset(ROLES))
INTAKE = ("channel", "complainant", "summary", "description", "product_or_service",
          "remedy_sought", "personal_data_involved")


def _owners(scenario: dict) -> set[str]:
    return {s["expect_assignee"] for s in scenario["steps"] if s.get("expect_assignee")}


@pytest.fixture
def world(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)  # nobody signs in by password here
    engine = get_engine(db_url)
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", EVERYONE)
        assert result.ok, [str(p) for p in result.problems]
    app = create_app({"SECRET_KEY": "test", "TESTING": True})
    return engine, app.test_client(), manual_clock


def _user(engine, username: str, roles: list[str], email: str | None = None) -> str:
    with unit_of_work(engine) as uow:
        create_user(uow.session, username, PASSWORD, roles, email=email)
        return create_token(uow.session, username)


def _fire_due_timers(engine) -> None:
    while worker.run_once(engine):
        pass


def _replay(world, scenario: dict, email: bool = False) -> tuple[str, dict[str, str]]:
    """Replay ``scenario`` through the API; the complaint's reference and the tokens."""
    engine, client, clock = world
    tokens = {role: _user(engine, name, ["staff", role] if role != "staff" else ["staff"],
                          f"{name}@example.com" if email else None)
              for role, name in ROLE_HOLDERS.items()}
    owner_tokens = {name: _user(engine, name, ["staff", "complaint_owner"])
                    for name in _owners(scenario)}
    received_at = parse_instant(scenario["start"]["received_at"])
    # Entered in the register an hour after it arrived: received_at is in the past.
    clock.set(received_at + timedelta(hours=1))

    body = {k: scenario["start"][k] for k in INTAKE if k in scenario["start"]}
    body["received_at"] = scenario["start"]["received_at"]
    created = client.post("/api/v1/complaints", json=body, headers=bearer(tokens["staff"]))
    assert created.status_code == 201, created.get_json()
    reference = created.get_json()["reference"]
    _fire_due_timers(engine)

    for number, step in enumerate(scenario["steps"], start=1):
        if "advance" in step:
            clock.advance(timedelta(**step["advance"]))
            _fire_due_timers(engine)
            continue
        if "clock" in step:
            clock.set(parse_instant(step["clock"]) + timedelta(hours=1))
            _fire_due_timers(engine)
            continue
        if step.get("expect_assignee"):
            token = owner_tokens[step["expect_assignee"]]
        else:
            token = tokens[step.get("expect_role", "staff")]
        inbox = client.get("/api/v1/tasks", headers=bearer(token)).get_json()
        matching = [t for t in inbox if t["bpmn_id"] == step["task"]]
        assert matching, f"step {number}: {step['task']} not in the inbox: " + ", ".join(
            t["bpmn_id"] for t in inbox)
        done = client.post(f"/api/v1/tasks/{matching[0]['id']}/complete",
                           json={"data": step.get("data", {})}, headers=bearer(token))
        assert done.status_code == 200, (number, step["task"], done.get_json())
        _fire_due_timers(engine)
    return reference, tokens


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_policy_path_reaches_its_end_through_the_api(world, path: Path):
    engine, client, clock = world
    scenario = json.loads(path.read_text())
    reference, tokens = _replay(world, scenario)
    record = client.get(f"/api/v1/complaints/{reference}",
                        headers=bearer(tokens["quality_manager"])).get_json()
    expect = scenario["expect"]
    assert record["status"] == expect["status"]
    assert {"log_by", "acknowledge_by"} <= set(record["deadlines"])
    for name, value in expect.get("deadlines", {}).items():
        if value is None:  # the scenario says this deadline must not be set
            assert record["deadlines"].get(name) is None, name
        elif name in ("log_by", "acknowledge_by"):  # counted from receipt, not from "now"
            assert parse_instant(record["deadlines"][name]) == parse_instant(value), name
        else:
            assert name in record["deadlines"], name
    assert record["logged_at"] is not None and record["acknowledged_at"] is not None
    if expect["status"] == "closed":
        assert record["closed_at"] is not None and record["resolved_at"] is not None


def test_the_operations_director_and_each_escalation_role_are_mailed_their_tasks(world):
    # Policy 5.1 (complaints reach the Operations Director) and 10.1 (escalation to the
    # Quality Manager, then Senior Management): each is mailed when a task waits for them.
    engine = world[0]
    scenario = json.loads(
        (PROJECT_ROOT / "processes" / "tests" /
         "07_dissatisfied_escalated_to_senior_management.json").read_text())
    reference, _ = _replay(world, scenario, email=True)
    with unit_of_work(engine, write=False) as uow:
        offered = uow.session.execute(
            select(OutboxMessage.recipient, OutboxMessage.subject)
            .where(OutboxMessage.kind == "task_offered")).all()
    told = {recipient for recipient, _ in offered}
    assert {"olive", "quinn", "sofia"} <= told
    assert "sam" not in told  # staff tasks mail nobody
    assert all(reference in subject for _, subject in offered)
    subjects = {recipient: subject for recipient, subject in offered}
    assert subjects["sofia"].startswith("A task for the Senior Management: ")
