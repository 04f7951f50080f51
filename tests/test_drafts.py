"""Editor drafts (engine/drafts.py): open, save, validate, scenarios, deploy.

On SQLite and (when configured) PostgreSQL, with the policy's own processes/ deployed.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from engine import drafts, instances, register  # noqa: F401 - instances first (import order)
from engine.audit import Actor
from engine.calendar import BusinessCalendar, parse_instant
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.errors import Conflict, InvalidData, NotFound
from engine.models import (
    AuditEvent,
    Complaint,
    DefinitionDraft,
    ProcessDefinition,
    ProcessInstance,
)
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT

from .conftest import FIXTURES
from .support import seeded_database

PAUL = Actor("paul", frozenset({"staff", "process_owner"}))
PIA = Actor("pia", frozenset({"process_owner"}))
SYSTEM = Actor("root", frozenset(ROLES))
MAIN = "complaint_handling"
STAGE = "receipt_and_logging.bpmn"
THREE = '"acknowledge_by": add_business_days(received_at, 3)'
TWO = '"acknowledge_by": add_business_days(received_at, 2)'
NOTE = "Acknowledge within 2 working days (was 3): the 2027 policy says so."


@pytest.fixture
def db(db_url):
    return seeded_database(db_url, {}, [PROJECT_ROOT / "processes"], SYSTEM)


def scenario_counts(process_id: str = MAIN) -> tuple[int, int]:
    """(scenarios of the process in processes/tests, those expecting an acknowledge_by)."""
    docs = [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((PROJECT_ROOT / "processes" / "tests").glob("*.json"))]
    mine = [d for d in docs if d.get("process") == process_id]
    return len(mine), sum("acknowledge_by" in d.get("expect", {}).get("deadlines", {})
                          for d in mine)


def open_draft(db, actor=PAUL, process_id=MAIN) -> dict[str, str]:
    with unit_of_work(db) as uow:
        return dict(drafts.open_draft(uow.session, process_id, actor).files)


def save(db, changed, actor=PAUL, removed=()):
    with unit_of_work(db) as uow:
        drafts.save_files(uow.session, MAIN, actor, changed, tuple(removed))


def two_days(files):
    assert THREE in files[STAGE]
    return {STAGE: files[STAGE].replace(THREE, TWO)}


def accept_all_deadlines(db, files):
    report = drafts.run_scenarios(files)
    for result in report.results:
        for change in drafts.deadline_changes(result):
            with unit_of_work(db) as uow:
                drafts.accept_deadline(uow.session, MAIN, PAUL, result.file,
                                       change["deadline"], change["got"])


def draft_files(db, actor=PAUL):
    with unit_of_work(db, write=False) as uow:
        return dict(drafts.find_draft(uow.session, MAIN, actor.username).files)


def versions(db, process_id=MAIN):
    with unit_of_work(db, write=False) as uow:
        rows = uow.session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.process_id == process_id)
            .order_by(ProcessDefinition.version)).all()
        for row in rows:
            row.sources  # noqa: B018 - load the deferred column before the session closes
        return rows


def test_a_draft_starts_as_the_current_version_with_its_forms_and_scenarios(db):
    files = open_draft(db)
    current = versions(db)[-1]
    assert {n: t for n, t in files.items() if not n.startswith("tests/")} == current.sources
    assert "forms/send_acknowledgement.json" in files
    assert "tests/01_minor_happy_path.json" in files
    # The annual review's scenario runs another process: it is not part of this draft.
    assert "tests/09_definition_review_approved.json" not in files
    with unit_of_work(db, write=False) as uow:
        draft = uow.session.scalars(select(DefinitionDraft)).one()
        assert (draft.username, draft.based_on_version) == ("paul", 1)
        assert uow.session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "definition_draft_opened")).all()


def test_each_user_has_their_own_draft_kept_until_discarded(db):
    files = open_draft(db)
    save(db, two_days(files))
    assert TWO in open_draft(db)[STAGE]  # reopening keeps the edit
    assert THREE in open_draft(db, PIA)[STAGE]  # another owner starts from the version
    with unit_of_work(db) as uow:
        assert drafts.discard_draft(uow.session, MAIN, PAUL)
    assert THREE in open_draft(db)[STAGE]


def test_a_file_with_a_bad_name_is_refused_and_nothing_is_saved(db):
    files = open_draft(db)
    for bad in ("../etc/passwd.bpmn", "notes.txt", "forms/sub/x.json", "/abs.bpmn"):
        with pytest.raises(InvalidData) as caught:
            save(db, {STAGE: files[STAGE].replace(THREE, TWO), bad: "x"})
        assert bad in caught.value.fields
    assert draft_files(db) == files


def test_opening_a_process_that_was_never_deployed_is_not_found(db):
    with pytest.raises(NotFound), unit_of_work(db) as uow:
        drafts.open_draft(uow.session, "no_such_process", PAUL)


def test_validation_names_the_flow_of_a_broken_gateway(db):
    files = open_draft(db)
    text = files["complaint_handling.bpmn"]
    broken = re.sub(r'\s*default="no_sensitive_information"', "", text, count=1)
    assert broken != text
    problems = drafts.validate({**files, "complaint_handling.bpmn": broken})
    assert [(p.file, p.element_id) for p in problems] == [
        ("complaint_handling.bpmn", "no_sensitive_information")]
    assert "no condition and the gateway has no default" in problems[0].message
    assert drafts.validate(files) == []


def test_validation_is_that_of_deploy_including_the_forms(db):
    files = open_draft(db)
    files["forms/send_acknowledgement.json"] = '{"type": "object", "properties": 3}'
    problems = drafts.validate(files)
    assert problems and all(p.file == "forms/send_acknowledgement.json" for p in problems)
    assert "not a valid JSON Schema" in problems[0].message


def test_scenarios_run_against_the_draft_and_show_the_new_deadline(db):
    files = open_draft(db)
    assert drafts.run_scenarios(files).ok
    report = drafts.run_scenarios({**files, **two_days(files)})
    failed = [r for r in report.results if not r.passed]
    assert len(failed) == scenario_counts()[1] > 0
    happy = next(r for r in failed if r.file == "tests/01_minor_happy_path.json")
    assert drafts.deadline_changes(happy) == [{
        "deadline": "acknowledge_by", "expected": "2026-12-24T14:30:00+00:00",
        "got": "2026-12-23T14:30:00+00:00"}]


def test_accepting_the_new_deadlines_makes_the_scenarios_pass(db):
    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    files = draft_files(db)
    assert drafts.run_scenarios(files).ok
    scenario = json.loads(files["tests/01_minor_happy_path.json"])
    assert scenario["expect"]["deadlines"]["acknowledge_by"] == "2026-12-23T14:30:00+00:00"


def test_a_draft_with_a_problem_cannot_be_deployed(db):
    files = open_draft(db)
    broken = re.sub(r'\s*default="no_sensitive_information"', "",
                    files["complaint_handling.bpmn"], count=1)
    save(db, {"complaint_handling.bpmn": broken})
    with pytest.raises(InvalidData) as caught, unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)
    assert "no_sensitive_information" in caught.value.fields["validation"][0]
    assert len(versions(db)) == 1


def test_a_draft_whose_scenarios_fail_cannot_be_deployed(db):
    files = open_draft(db)
    save(db, two_days(files))
    with pytest.raises(InvalidData) as caught, unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)
    assert f"{scenario_counts()[1]} failing" in caught.value.fields["scenarios"][0]
    assert len(versions(db)) == 1


@pytest.mark.parametrize("note", [None, "", "   ", "changed"])
def test_a_change_note_is_required(db, note):
    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    with pytest.raises(InvalidData) as caught, unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, note)
    assert "change_note" in caught.value.fields
    assert len(versions(db)) == 1


def test_an_unchanged_draft_deploys_nothing(db):
    open_draft(db)
    with pytest.raises(InvalidData, match="nothing to deploy"), unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)


def test_deploy_refused_when_another_version_was_deployed_since(db):
    files = open_draft(db)
    open_draft(db, PIA)
    changed = two_days(files)
    save(db, changed, PIA)
    save(db, changed)
    accept_all_deadlines(db, draft_files(db))
    with unit_of_work(db) as uow:
        scenarios = {n: t for n, t in draft_files(db).items() if n.startswith("tests/")}
        drafts.save_files(uow.session, MAIN, PIA, scenarios)
        drafts.deploy_draft(uow.session, MAIN, PIA, NOTE)
    with pytest.raises(Conflict, match="version 2 was deployed"), unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)


def record(db):
    data = {"channel": "email", "complainant": {"name": "Ann Example"},
            "summary": "Parcel arrived broken", "description": "The vase inside broke."}
    with unit_of_work(db) as uow:
        complaint = register.record_complaint(uow, data, PAUL)
        return complaint.reference


def case(db, reference):
    with unit_of_work(db, write=False) as uow:
        complaint = uow.session.scalars(
            select(Complaint).where(Complaint.reference == reference)).one()
        instance = uow.session.get(ProcessInstance, complaint.instance_id)
        version = uow.session.get(ProcessDefinition, instance.definition_id).version
        return complaint.received_at, parse_instant(complaint.deadlines["acknowledge_by"]), \
            version


def test_deploy_makes_a_new_version_for_new_cases_while_open_ones_keep_theirs(db):
    calendar = BusinessCalendar("GB-ENG")
    older = record(db)
    received, due, version = case(db, older)
    assert (due, version) == (calendar.add_business_days(received, 3), 1)

    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    with unit_of_work(db) as uow:
        deployed = drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)
    assert {str(d).rsplit(" ", 1)[0] for d in deployed if d.changed} == {
        "complaint_handling v2", "receipt_and_logging v2"}

    latest = versions(db)[-1]
    assert (latest.version, latest.deployed_by, latest.change_note) == (2, "paul", NOTE)
    assert "tests/01_minor_happy_path.json" in latest.sources  # scenarios kept with it
    with unit_of_work(db, write=False) as uow:
        assert drafts.find_draft(uow.session, MAIN, "paul") is None
        actions = uow.session.scalars(select(AuditEvent.action).where(
            AuditEvent.actor == "paul")).all()
    assert "definition_deployed" in actions and "definition_draft_deployed" in actions

    newer = record(db)
    received_new, due_new, version_new = case(db, newer)
    assert (due_new, version_new) == (calendar.add_business_days(received_new, 2), 2)
    assert case(db, older)[1:] == (due, 1)


def test_a_new_draft_starts_from_the_scenarios_kept_with_the_version(db):
    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    with unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)
    files = open_draft(db)
    assert drafts.run_scenarios(files).ok
    assert TWO in files[STAGE]


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "miwg").glob("*.bpmn")))
def test_a_foreign_diagram_is_validated_element_by_element_without_a_crash(db, name):
    files = open_draft(db, process_id="acknowledgement")
    text = (FIXTURES / "miwg" / name).read_text(encoding="utf-8")
    problems = [p for p in drafts.validate({**files, name: text}) if p.file == name]
    # Deploy's own verdict first: the diagram is not executable (as exported by its tool).
    assert problems[0].message.startswith("no executable process")
    rest = problems[1:]
    assert rest and all(p.message.startswith(drafts.IF_EXECUTABLE) for p in rest)
    if name == "A.1.0.bpmn":  # a plain sequence: nothing the engine could not run
        assert [p.element_id for p in rest] == [None]
    else:
        assert any(p.element_id for p in rest), [p.message for p in rest]
    assert drafts.validate(files) == []  # the draft's own files are not affected


def test_what_a_foreign_diagram_cannot_run_is_named_element_by_element(db):
    files = open_draft(db, process_id="acknowledgement")
    text = (FIXTURES / "miwg" / "B.2.0.bpmn").read_text(encoding="utf-8")
    messages = {p.element_id: p.message for p in drafts.validate({**files, "B.2.0.bpmn": text})
                if p.file == "B.2.0.bpmn"}
    assert "data store" in messages["DS1373638079677"]
    assert "not supported" in messages["DS1373638079677"]
    assert "is empty" in messages["_4e71bf73-1719-401e-a9a2-85dc89fc1150"]  # a timer


def test_restarting_with_the_files_on_disk_keeps_the_version_deployed_from_the_editor(db):
    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    with unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE)
    with unit_of_work(db) as uow:  # what `make run` does on every start
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", SYSTEM,
                                  keep_newer=True)
    assert result.ok and not any(d.changed for d in result.deployed)
    assert [v.version for v in versions(db)] == [1, 2]
    with unit_of_work(db) as uow:  # a plain deploy still deploys the files on disk
        result = deploy_directory(uow.session, PROJECT_ROOT / "processes", SYSTEM)
    assert [v.version for v in versions(db)] == [1, 2, 3]


def test_files_checked_before_the_transaction_count_only_if_the_draft_still_has_them(db):
    files = open_draft(db)
    save(db, two_days(files))
    accept_all_deadlines(db, draft_files(db))
    checked = draft_files(db)
    drafts.check_draft(checked)
    broken = re.sub(r'\s*default="no_sensitive_information"', "",
                    checked["complaint_handling.bpmn"], count=1)
    save(db, {"complaint_handling.bpmn": broken})  # changed meanwhile, in another tab
    with pytest.raises(InvalidData) as caught, unit_of_work(db) as uow:
        drafts.deploy_draft(uow.session, MAIN, PAUL, NOTE, checked_files=checked)
    assert "validation" in caught.value.fields
    assert len(versions(db)) == 1
