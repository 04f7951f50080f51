"""Mail templates edited by process owners in the browser, kept as versions.

The templates ship as files beside the processes (``processes/mail/NAME.txt``, see
engine/mail.py). A process owner (or an admin) saves a new text as a new version in
the table ``mail_templates``; the newest version of a name is its *current* text, the
one the next mail is rendered from (``mail.render(..., conn=...)`` asks
``saved_text``). A name with no saved version uses its file.

Saving is refused, and nothing is stored, unless the text passes the very check that
``complaints definitions deploy`` applies to the files (``mail.template_problems``: the
``Subject:`` line, the Jinja syntax, and a sandboxed rendering with the sample values);
the problems read ``mail/NAME.txt:LINE: message`` as deploy prints them. A change note
is required. Each save is one transaction and audited (``mail_template_saved``).

``preview`` renders a draft with the realistic sample values of ``mail.SAMPLE_VALUES``
in the same sandbox as the real mail (engine/templates.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import clock, mail
from engine.audit import Actor, record
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import MailTemplate
from engine.permissions import may_deploy

#: What each mail is for, and the values its template may use (processes/mail/README.md).
PURPOSES = {
    "acknowledgement": "To the complainant when a complaint with an e-mail address is "
                       "recorded: reference, next steps, timescale, escalation route.",
    "task_assigned": "To a staff member when a task is assigned to them by name "
                     "(Complaint Owner tasks).",
    "task_offered": "To each holder of a role (Operations Director, Quality Manager, "
                    "Senior Management, Information Security Officer, process owner) "
                    "when a task is offered to that role.",
    "task_digest": "To a staff member once a day (from 07:00) when their tasks, or "
                   "tasks waiting for a role they hold (as for task_offered), are "
                   "overdue or due soon.",
}
VALUES = {
    "acknowledgement": "reference, complainant_name, received_on",
    "task_assigned": "username, task_title, reference (may be none), due_at (may be empty)",
    "task_offered": "username, task_title, role (e.g. Quality Manager), reference (may be "
                    "none), due_at (may be empty)",
    "task_digest": "username, overdue and due_soon (lists of tasks with title, reference, "
                   "due_at, and role: none for the user's own tasks, else the role the "
                   "task waits for, e.g. Quality Manager)",
}
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]{0,79}")
MAX_TEXT_CHARS = 100_000
MAX_NOTE_CHARS = 2000


def may_edit(actor: Actor) -> bool:
    """Mail templates are edited by those who deploy the processes: process owners and
    admins."""
    return may_deploy(actor)


def _check_editor(actor: Actor) -> None:
    if not may_edit(actor):
        raise Forbidden("mail templates are edited by process owners and admins")


# -- reading ------------------------------------------------------------------------------------

def shipped_text(name: str) -> str | None:
    """The file ``processes/mail/NAME.txt`` as shipped, or None."""
    if not NAME_PATTERN.fullmatch(name or ""):
        return None
    try:
        return mail.load_template(name)
    except mail.TemplateRenderError:
        return None


def file_names() -> list[str]:
    return sorted(f.stem for f in mail.MAIL_DIR.glob("*.txt")
                  if NAME_PATTERN.fullmatch(f.stem))


def saved_text(conn: Connection | Session, name: str) -> str | None:
    """The newest saved version's text of ``name``, or None (then the file is used)."""
    return conn.execute(
        select(MailTemplate.text).where(MailTemplate.name == name)
        .order_by(MailTemplate.version.desc()).limit(1)).scalar()


def names(session: Session) -> list[str]:
    """Every template: the files in processes/mail, and any name saved in the database."""
    saved = set(session.scalars(select(MailTemplate.name).distinct()))
    return sorted(set(file_names()) | saved)


@dataclass(frozen=True)
class Current:
    """A template's current text and where it comes from."""

    name: str
    text: str
    #: The newest saved version, or None when the shipped file is current.
    version: int | None
    changed_by: str | None = None
    changed_at: datetime | None = None
    change_note: str | None = None

    @property
    def purpose(self) -> str:
        return PURPOSES.get(self.name, "Not sent by the system.")

    @property
    def values(self) -> str:
        return VALUES.get(self.name, "")


def latest(session: Session, name: str) -> MailTemplate | None:
    return session.scalars(select(MailTemplate).where(MailTemplate.name == name)
                           .order_by(MailTemplate.version.desc()).limit(1)).first()


def current(session: Session, name: str) -> Current:
    """The current text of ``name``: its newest saved version, else its file. NotFound
    when it is neither saved nor shipped."""
    row = latest(session, name)
    if row is not None:
        return Current(name, row.text, row.version, row.changed_by, row.changed_at,
                       row.change_note)
    text = shipped_text(name)
    if text is None:
        raise NotFound(f"there is no mail template {name!r}")
    return Current(name, text, None)


def list_templates(session: Session) -> list[Current]:
    return [current(session, name) for name in names(session)]


def history(session: Session, name: str) -> list[MailTemplate]:
    """Every saved version of ``name``, newest first."""
    return list(session.scalars(select(MailTemplate).where(MailTemplate.name == name)
                                .order_by(MailTemplate.version.desc())))


# -- checking and previewing --------------------------------------------------------------

def normalise(text: Any) -> str:
    """Text as typed in a browser: CRLF line ends become LF."""
    return str(text or "").replace("\r\n", "\n").replace("\r", "\n")


def problems(name: str, text: str) -> list[str]:
    """``mail/NAME.txt:LINE: message`` for each problem, as deploy reports them."""
    if len(text) > MAX_TEXT_CHARS:
        return [f"mail/{name}.txt: the template is longer than {MAX_TEXT_CHARS} characters"]
    found = []
    for line, message in mail.template_problems(text, name):
        where = f"mail/{name}.txt:{line}" if line else f"mail/{name}.txt"
        found.append(f"{where}: {message}")
    return found


@dataclass(frozen=True)
class Preview:
    subject: str | None
    body: str | None
    values: dict[str, Any]
    problems: list[str]


def sample_values(name: str) -> dict[str, Any]:
    samples = mail.SAMPLE_VALUES.get(name)
    return dict(samples[0]) if samples else {}


def preview(name: str, text: Any) -> Preview:
    """The draft ``text`` rendered in the sandbox with ``name``'s sample values, or its
    problems (nothing is stored)."""
    text = normalise(text)
    values = sample_values(name)
    found = problems(name, text)
    if found:
        return Preview(None, None, values, found)
    try:
        rendered = mail.render_source(text, values)
    except mail.TemplateRenderError as exc:  # e.g. a name without sample values
        where = f"mail/{name}.txt:{exc.line}" if exc.line else f"mail/{name}.txt"
        return Preview(None, None, values, [f"{where}: {exc.message}"])
    return Preview(rendered.subject, rendered.body, values, [])


# -- saving --------------------------------------------------------------------------------

def save(session: Session, name: str, text: Any, change_note: Any, actor: Actor,
         based_on_version: int | None = None, *, check_base: bool = False) -> MailTemplate:
    """Save ``text`` as the next version of ``name`` (process owners and admins).

    Refused (InvalidData with the fields ``text`` and ``change_note``, nothing saved)
    when the text fails the deploy check or equals the current text, or the note is
    missing. With ``check_base`` (the edit page), Conflict when someone saved a version
    since the editor opened ``based_on_version`` (None: the shipped file).
    """
    _check_editor(actor)
    now = current(session, name)  # NotFound for an unknown name
    text = normalise(text)
    note = " ".join(str(change_note or "").split())
    errors: dict[str, list[str]] = {}
    found = problems(name, text)
    if found:
        errors["text"] = found
    elif text == now.text:
        errors["text"] = ["nothing to save: the text is the same as the current version"]
    if not note:
        errors["change_note"] = ["a change note is required: say what changed and why"]
    elif len(note) > MAX_NOTE_CHARS:
        errors["change_note"] = [f"at most {MAX_NOTE_CHARS} characters"]
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidData(f"the template was not saved: {first}", errors)
    if check_base and based_on_version != now.version:
        saved = (f"version {now.version} of {name} was saved by {now.changed_by}"
                 if now.version is not None else f"the versions of {name} changed")
        raise Conflict(f"{saved} since you opened the editor: reload the page and make your "
                       "change again")
    version = (session.scalar(select(func.max(MailTemplate.version))
                              .where(MailTemplate.name == name)) or 0) + 1
    row = MailTemplate(name=name, version=version, text=text, changed_by=actor.username,
                       changed_at=clock.now(), change_note=note)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"another version of {name} was saved at the same moment: reload "
                       "the page and make your change again") from None
    record(session, actor, "mail_template_saved",
           details={"name": name, "version": version, "change_note": note,
                    "previous_version": now.version})
    return row
