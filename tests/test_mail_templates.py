"""Mail templates: beside the processes, checked at deploy, rendered sandboxed; and what
the acknowledgement says (and does not say)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import instances, mail, register  # noqa: F401 - instances first: import order
from engine.audit import Actor
from engine.db import unit_of_work
from engine.definition_files import load_directory
from engine.models import AuditEvent, OutboxMessage
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT

from .conftest import FIXTURES
from .support import deploy

STAFF = Actor("sam", frozenset({"staff"}))
EVERYONE = Actor("root", frozenset(ROLES))
PROCESSES = PROJECT_ROOT / "processes"

SECRETS = {
    "summary": "Parcel arrived broken SUMMARY-MARK",
    "description": "The courier DESCRIPTION-MARK threw it over the fence.",
    "product_or_service": "Vase PRODUCT-MARK",
    "remedy_sought": "Refund REMEDY-MARK",
}
COMPLAINANT = {"name": "Ann Example", "email": "ann.private@example.org",
               "phone": "07700 900123", "postal_address": "1 Secret Lane, Hometown"}


@pytest.fixture
def deployed(db):
    deploy(db, FIXTURES / "register", EVERYONE)
    return db


def record(db, **changes):
    data = {"channel": "website", "complainant": dict(COMPLAINANT),
            "personal_data_involved": False, **SECRETS}
    data.update(changes)
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, data, STAFF)


def queued(db) -> list[OutboxMessage]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def problems_of(directory: Path) -> list[str]:
    return [str(p) for p in load_directory(directory)[1]]


def process_copy(tmp_path) -> Path:
    """The policy's processes with their mail templates, to edit."""
    target = tmp_path / "processes"
    shutil.copytree(PROCESSES, target, ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(PROJECT_ROOT / "forms", tmp_path / "forms")
    return target


# -- what the acknowledgement says ---------------------------------------------------------------

def test_the_acknowledgement_gives_reference_next_steps_timescale_and_escalation(
        deployed, manual_clock):
    complaint = record(deployed)
    [message] = queued(deployed)
    text = f"{message.subject}\n{message.body}"
    assert complaint.reference in message.subject
    assert "Dear Ann Example," in message.body
    assert message.body.count(complaint.reference) >= 2
    assert "Monday 21 December 2026" in message.body  # when we received it
    assert "What happens next" in message.body and "complaint owner" in message.body
    assert "within 10 working days" in message.body  # the expected timescale ...
    assert "within 8 weeks" in message.body  # ... and the long stop
    assert "escalated" in message.body and "Quality Manager" in message.body
    assert "ombudsman" in text
    assert mail.render("acknowledgement", {"reference": "R", "complainant_name": "N",
                                            "received_on": "D"}).problem is None


def test_the_acknowledgement_holds_no_personal_data_but_the_name_and_no_case_details(
        deployed, manual_clock):
    record(deployed)
    [message] = queued(deployed)
    text = f"{message.subject}\n{message.body}"
    for secret in SECRETS.values():
        assert secret not in text
    for mark in ("SUMMARY-MARK", "DESCRIPTION-MARK", "PRODUCT-MARK", "REMEDY-MARK",
                 "07700", "Secret Lane", "ann.private"):
        assert mark not in text
    assert message.to_address == "ann.private@example.org"  # only on the envelope


def test_the_acknowledgement_template_gets_only_non_sensitive_values():
    from engine.notifications import acknowledgement_values
    values = acknowledgement_values("CMP-2026-000001", "Ann", datetime(2026, 12, 21, tzinfo=UTC))
    assert set(values) == {"reference", "complainant_name", "received_on"}


# -- the templates beside the processes ---------------------------------------------------------

def test_every_mail_template_of_the_policy_has_a_subject_and_compiles():
    files = sorted((PROCESSES / "mail").glob("*.txt"))
    assert {f.stem for f in files} == set(mail.NAMES)
    for file in files:
        assert mail.template_problems(file.read_text()) == [], file.name
    assert mail.directory_problems(PROCESSES) == []


def test_each_template_renders_with_the_values_its_sender_gives():
    task = {"title": "Resolve", "reference": "CMP-2026-000001", "due_at": "Thu 24 Dec 2026",
            "role": None}
    examples = {
        "acknowledgement": {"reference": "CMP-2026-000001", "complainant_name": "Ann",
                            "received_on": "Monday 21 December 2026"},
        "task_assigned": {"username": "owen", "task_title": "Resolve",
                          "reference": "CMP-2026-000001", "due_at": "Thu 24 Dec 2026, 17:00"},
        "task_offered": {"username": "quinn", "task_title": "Review", "role": "Quality Manager",
                         "reference": "CMP-2026-000001", "due_at": "Thu 24 Dec 2026, 17:00"},
        "task_digest": {"username": "owen", "overdue": [task], "due_soon": []},
    }
    for name, values in examples.items():
        rendered = mail.render(name, values)
        assert rendered.problem is None, rendered.problem
        assert rendered.subject and "\n" not in rendered.subject
    assigned = mail.render("task_assigned", {"username": "owen", "task_title": "Resolve",
                                             "reference": None, "due_at": ""})
    assert "Complaint CMP" not in assigned.body and "    Due" not in assigned.body


def test_deploy_refuses_a_mail_template_without_a_subject_line(tmp_path):
    processes = process_copy(tmp_path)
    (processes / "mail" / "acknowledgement.txt").write_text("Dear {{ complainant_name }},\n")
    assert problems_of(processes) == [
        'mail/acknowledgement.txt:1: the first line must be the subject, "Subject: ..."']


def test_deploy_refuses_a_mail_template_that_does_not_compile_and_names_the_line(tmp_path):
    processes = process_copy(tmp_path)
    (processes / "mail" / "task_assigned.txt").write_text(
        "Subject: Task {{ task_title }}\n\nHello {{ username }},\n\n{% if reference %}oops\n")
    [problem] = problems_of(processes)
    assert problem.startswith("mail/task_assigned.txt:5: template syntax error")


def test_deploy_takes_the_policy_with_its_mail_templates(tmp_path):
    bundles, problems = load_directory(process_copy(tmp_path))
    assert problems == [] and bundles


def test_a_process_owners_edit_of_a_template_changes_the_mail(deployed, manual_clock,
                                                               tmp_path, monkeypatch):
    (tmp_path / "acknowledgement.txt").write_text(
        "Subject: Thanks, {{ complainant_name }}: {{ reference }}\n\nWe will be in touch.\n")
    monkeypatch.setattr(mail, "MAIL_DIR", tmp_path)
    complaint = record(deployed)
    [message] = queued(deployed)
    assert message.subject == f"Thanks, Ann Example: {complaint.reference}"
    assert message.body == "We will be in touch.\n"


# -- the sandbox ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, refused", [
    ("{{ reference.__class__.__mro__ }}", "unsafe"),
    ("{{ ''.__class__.__subclasses__() }}", "unsafe"),
    ("{% for i in range(10**9) %}x{% endfor %}", "range"),
    ("{{ description }}", "undefined"),
    ("{% include 'x.txt' %}", "template error"),
])
def test_a_template_is_rendered_in_the_sandbox(body, refused):
    with pytest.raises(mail.TemplateRenderError) as caught:
        mail.render_source(f"Subject: x\n\n{body}\n", {"reference": "R"})
    assert refused in caught.value.message.lower()
    assert caught.value.line in (3, None)


def test_a_template_that_fails_sends_the_built_in_text_and_is_audited(
        deployed, manual_clock, tmp_path, monkeypatch):
    (tmp_path / "acknowledgement.txt").write_text(
        "Subject: {{ reference }}\n\n{{ description }}\n")  # not given: an error
    monkeypatch.setattr(mail, "MAIL_DIR", tmp_path)
    complaint = record(deployed)
    [message] = queued(deployed)
    assert complaint.reference in message.subject and complaint.reference in message.body
    assert SECRETS["description"] not in message.body
    with unit_of_work(deployed, write=False) as uow:
        [event] = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "mail_template_failed")).all()
    assert event.details["kind"] == "acknowledgement"
    assert "description" in event.details["problem"]
