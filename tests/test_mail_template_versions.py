"""Mail templates saved as versions by process owners (engine/mail_templates.py).

The newest saved version is the text of the next mail; a text is saved only if it
passes the check deploy applies to the files (refused as ``mail/NAME.txt:LINE:
message``, nothing stored); staff may not save; a change note is required; the
preview renders in the sandbox. SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from engine import instances, mail, mail_templates, register  # noqa: F401 - import order
from engine.audit import Actor
from engine.db import unit_of_work
from engine.definition_files import load_directory
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import AuditEvent, MailTemplate, OutboxMessage
from engine.roles import ROLES
from engine.settings import PROJECT_ROOT

from .conftest import FIXTURES
from .support import deploy

PAT = Actor("pat", frozenset({"process_owner"}))
ADA = Actor("ada", frozenset({"admin"}))
SAM = Actor("sam", frozenset({"staff"}))
QUINN = Actor("quinn", frozenset({"staff", "quality_manager"}))
EVERYONE = Actor("root", frozenset(ROLES))
PROCESSES = PROJECT_ROOT / "processes"

THANKS = ("Subject: Thanks, {{ complainant_name }}: {{ reference }}\n\n"
          "We received your complaint on {{ received_on }}. Quote {{ reference }}.\n")
NOTE = "Shorter acknowledgement, agreed with the Quality Manager"


@pytest.fixture
def deployed(db):
    deploy(db, FIXTURES / "register", EVERYONE)
    return db


def save(db, text, note=NOTE, actor=PAT, name="acknowledgement", **kwargs) -> MailTemplate:
    with unit_of_work(db) as uow:
        return mail_templates.save(uow.session, name, text, note, actor, **kwargs)


def record_complaint(db):
    data = {"channel": "website", "summary": "Broken vase", "description": "It broke.",
            "personal_data_involved": False,
            "complainant": {"name": "Ann Example", "email": "ann@example.org"}}
    with unit_of_work(db) as uow:
        return register.record_complaint(uow, data, SAM)


def saved_rows(db) -> list[MailTemplate]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(MailTemplate).order_by(MailTemplate.id)))


def audit_count(db, action) -> int:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == action))


def current_text(db, name="acknowledgement") -> str:
    with unit_of_work(db, write=False) as uow:
        return mail_templates.current(uow.session, name).text


# -- the newest version is sent ---------------------------------------------------------------

def test_the_next_acknowledgement_uses_the_newest_saved_text(deployed, manual_clock):
    row = save(deployed, THANKS)
    assert (row.version, row.changed_by, row.change_note) == (1, "pat", NOTE)
    complaint = record_complaint(deployed)
    save(deployed, THANKS.replace("Thanks", "Thank you"), "Warmer greeting in the subject",
         actor=ADA)
    second = record_complaint(deployed)
    with unit_of_work(deployed, write=False) as uow:
        first_mail, second_mail = uow.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert first_mail.subject == f"Thanks, Ann Example: {complaint.reference}"
    assert first_mail.body == (f"We received your complaint on Monday 21 December 2026. "
                               f"Quote {complaint.reference}.\n")
    assert second_mail.subject == f"Thank you, Ann Example: {second.reference}"
    assert audit_count(deployed, "mail_template_failed") == 0


def test_without_a_saved_version_the_shipped_file_is_current(db):
    with unit_of_work(db, write=False) as uow:
        now = mail_templates.current(uow.session, "acknowledgement")
        listed = mail_templates.list_templates(uow.session)
    assert now.version is None
    assert now.text == (PROCESSES / "mail" / "acknowledgement.txt").read_text()
    assert [t.name for t in listed] == ["acknowledgement", "task_assigned", "task_digest",
                                        "task_offered"]
    assert all(t.purpose and t.version is None for t in listed)


def test_saving_is_audited_and_kept_as_history_newest_first(db, manual_clock):
    save(db, THANKS)
    manual_clock.advance(minutes=5)
    save(db, THANKS + "\nThe Complaints Team\n", "Signed by the team", actor=ADA)
    with unit_of_work(db, write=False) as uow:
        versions = mail_templates.history(uow.session, "acknowledgement")
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "mail_template_saved").order_by(AuditEvent.id)).all()
        listed = {t.name: t for t in mail_templates.list_templates(uow.session)}
    assert [(v.version, v.changed_by) for v in versions] == [(2, "ada"), (1, "pat")]
    assert [(e.actor, e.details["version"], e.details["change_note"]) for e in events] == [
        ("pat", 1, NOTE), ("ada", 2, "Signed by the team")]
    assert events[1].details["previous_version"] == 1
    assert listed["acknowledgement"].version == 2
    assert listed["acknowledgement"].changed_by == "ada"
    assert listed["task_digest"].version is None


def test_browser_line_ends_are_stored_as_newlines(db):
    row = save(db, THANKS.replace("\n", "\r\n"))
    assert row.text == THANKS


# -- refused texts --------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("Dear {{ complainant_name }},\n",
     'mail/acknowledgement.txt:1: the first line must be the subject, "Subject: ..."'),
    ("Subject: {{ reference }}\nDear {{ complainant_name }},\n",
     "mail/acknowledgement.txt:2: the subject line must be followed by an empty line"),
    ("Subject: {{ reference }}\n\nDear {{ complainant_name }},\n\n{% if reference %}oops\n",
     "mail/acknowledgement.txt:5: template syntax error: Unexpected end of template."),
    ("Subject: {{ reference }}\n\nDear {{ complainant_name }},\n{{ description }}\n",
     "mail/acknowledgement.txt:4: template error: 'description' is undefined "
     "(rendering with sample values)"),
])
def test_a_broken_template_is_refused_with_file_and_line_and_nothing_changes(
        db, text, message):
    with pytest.raises(InvalidData) as refused:
        save(db, text)
    assert refused.value.fields["text"][0].startswith(message)
    assert saved_rows(db) == []
    assert audit_count(db, "mail_template_saved") == 0
    assert current_text(db) == (PROCESSES / "mail" / "acknowledgement.txt").read_text()


def test_saving_uses_exactly_the_check_deploy_applies_to_the_files(db, tmp_path):
    broken = "Subject: {{ reference }}\n\nHello {{ complainant_name }}\n{{ summary }}\n"
    target = tmp_path / "processes"
    shutil.copytree(PROCESSES, target, ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(PROJECT_ROOT / "forms", tmp_path / "forms")
    (target / "mail" / "acknowledgement.txt").write_text(broken)
    deploy_says = [str(p) for p in load_directory(target)[1]]
    with pytest.raises(InvalidData) as refused:
        save(db, broken)
    assert refused.value.fields["text"] == deploy_says
    assert deploy_says == ["mail/acknowledgement.txt:4: template error: 'summary' is "
                           "undefined (rendering with sample values)"]


def test_every_sample_of_a_mail_is_rendered_before_saving(db):
    # Fine while the task has a reference, broken for a task without one: refused.
    text = ("Subject: A task: {{ task_title }}\n\n"
            "Hello {{ username }}, see {{ reference.upper() }}.\n")
    with pytest.raises(InvalidData) as refused:
        save(db, text, name="task_assigned")
    assert refused.value.fields["text"][0].startswith("mail/task_assigned.txt:3: ")
    assert saved_rows(db) == []


def test_staff_and_the_quality_manager_may_not_save(db):
    for actor in (SAM, QUINN):
        with pytest.raises(Forbidden):
            save(db, THANKS, actor=actor)
    assert saved_rows(db) == []
    assert mail_templates.may_edit(PAT) and mail_templates.may_edit(ADA)


@pytest.mark.parametrize("note", ["", "   ", None])
def test_a_change_note_is_required(db, note):
    with pytest.raises(InvalidData) as refused:
        save(db, THANKS, note)
    assert "change note is required" in refused.value.fields["change_note"][0]
    assert "text" not in refused.value.fields
    assert saved_rows(db) == []


def test_text_and_note_problems_are_reported_together(db):
    with pytest.raises(InvalidData) as refused:
        save(db, "no subject\n", "")
    assert set(refused.value.fields) == {"text", "change_note"}


def test_saving_the_current_text_again_is_refused(db):
    save(db, THANKS)
    with pytest.raises(InvalidData) as refused:
        save(db, THANKS, "Nothing really")
    assert "same as the current version" in refused.value.fields["text"][0]
    assert len(saved_rows(db)) == 1


def test_an_editor_opened_before_someone_saved_is_told_to_reload(db):
    save(db, THANKS, check_base=True, based_on_version=None)
    with pytest.raises(Conflict) as conflict:
        save(db, THANKS + "\nBye\n", "Sign-off added", actor=ADA, check_base=True,
             based_on_version=None)
    assert "version 1" in str(conflict.value) and "pat" in str(conflict.value)
    save(db, THANKS + "\nBye\n", "Sign-off added", actor=ADA, check_base=True,
         based_on_version=1)
    assert [r.version for r in saved_rows(db)] == [1, 2]


def test_an_unknown_template_cannot_be_saved(db):
    with pytest.raises(NotFound):
        save(db, THANKS, name="newsletter")
    with pytest.raises(NotFound):
        save(db, THANKS, name="../acknowledgement")


# -- the preview ------------------------------------------------------------------------------

def test_the_preview_renders_the_draft_with_realistic_sample_values(db):
    preview = mail_templates.preview("acknowledgement", THANKS.replace("\n", "\r\n"))
    assert preview.problems == []
    assert preview.subject == "Thanks, Ann Example: CMP-2026-000042"
    assert preview.body == ("We received your complaint on Monday 21 December 2026. "
                            "Quote CMP-2026-000042.\n")
    digest = mail_templates.preview("task_digest", mail.load_template("task_digest"))
    assert "1 overdue, 1 due soon" in digest.subject and "Resolve the complaint" in digest.body
    assert saved_rows(db) == []


@pytest.mark.parametrize("escape", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ reference.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ (reference|attr('__class__')).mro() }}",
])
def test_the_preview_is_sandboxed_and_escapes_fail_cleanly(db, escape):
    text = f"Subject: {{{{ reference }}}}\n\n{escape}\n"
    preview = mail_templates.preview("acknowledgement", text)
    assert preview.subject is None and preview.body is None
    [problem] = preview.problems
    assert problem.startswith("mail/acknowledgement.txt:3: ")
    assert "unsafe" in problem or "undefined" in problem
    with pytest.raises(InvalidData):
        save(db, text)
    assert saved_rows(db) == []


def test_a_runaway_template_is_stopped_in_the_preview():
    preview = mail_templates.preview(
        "acknowledgement", "Subject: x\n\n{% for i in range(10**9) %}x{% endfor %}\n")
    assert preview.problems and "range" in preview.problems[0]
