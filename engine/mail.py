"""Mail texts: templates beside the processes (``processes/mail/NAME.txt``), rendered sandboxed.

A template is plain text. Its first line is the subject, ``Subject: ...``, then one
empty line, then the body; both are Jinja templates on the values the sender passes
(listed in processes/mail/README.md), rendered with engine.templates' sandbox
(``ImmutableSandboxedEnvironment``, no file access, time and size limits, a missing
variable is an error). Process owners edit them like the diagrams, or in the browser
(engine/mail_templates.py: versions in the table ``mail_templates``; the newest saved
version is the current text, else the file shipped here). ``complaints definitions
deploy`` and saving in the browser use one check, ``template_problems``: the shape, the
syntax, and a sandboxed rendering with the sample values of ``SAMPLE_VALUES``.

A template that fails when it is rendered must not stop the step that sends the mail
(recording a complaint, say): ``render`` then falls back to the built-in text of that
mail, and the sender audits the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from engine import settings, templates
from engine.settings import PROJECT_ROOT
from engine.templates import TemplateRenderError

#: Where the mail templates live: beside the process definitions.
MAIL_DIR = PROJECT_ROOT / "processes" / "mail"
SUBJECT = "Subject:"
#: The mails the system sends, by template name.
NAMES = ("acknowledgement", "task_assigned", "task_offered", "task_digest")

#: Used when a template is missing or fails: short, and free of case details.
FALLBACK = {
    "acknowledgement": (
        "We have received your complaint (reference {{ reference }})",
        "Dear {{ complainant_name }},\n\nWe received your complaint on {{ received_on }} and "
        "recorded it under the reference {{ reference }}; please quote it when you contact "
        "us. A complaint owner will investigate it and write to you with the outcome. We "
        "aim to resolve complaints within 10 to 20 working days and will send our final "
        "response within 8 weeks at the latest. If you are unhappy with how we handle it, "
        "contact us quoting the reference and ask for it to be escalated to our Quality "
        "Manager.\n\nThe Complaints Team\n"),
    "task_assigned": (
        "A task for you: {{ task_title }}",
        "Hello {{ username }},\n\nThe task \"{{ task_title }}\" has been assigned to you. "
        "Open your inbox in the complaints system to work on it.\n"),
    "task_offered": (
        "A task for the {{ role }}: {{ task_title }}",
        "Hello {{ username }},\n\nThe task \"{{ task_title }}\" is waiting for the {{ role }}. "
        "Open your inbox in the complaints system to take it.\n"),
    "task_digest": (
        "Your complaints tasks: {{ overdue | length }} overdue, {{ due_soon | length }} due soon",
        "Hello {{ username }},\n\n{{ overdue | length }} of your tasks are overdue and "
        "{{ due_soon | length }} due soon. Open your inbox in the complaints system.\n"),
}


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str
    #: Why the built-in text was used instead of the template, if it was.
    problem: str | None = None


def split_template(source: str) -> tuple[str, str, int]:
    """(subject template, body template, line of the body's first line)."""
    if not isinstance(source, str):
        raise TemplateRenderError("the template is not text")
    lines = source.replace("\r\n", "\n").split("\n")
    first = lines[0].lstrip("\ufeff")
    if not first.startswith(SUBJECT):
        raise TemplateRenderError(
            f'the first line must be the subject, "{SUBJECT} ..."', line=1)
    subject = first[len(SUBJECT):].strip()
    if not subject:
        raise TemplateRenderError("the subject is empty", line=1)
    if len(lines) < 2 or lines[1].strip():
        raise TemplateRenderError("the subject line must be followed by an empty line",
                                  line=2)
    return subject, "\n".join(lines[2:]), 3


#: Realistic values each mail's sender gives (see processes/mail/README.md): a template
#: must render with every one of them to be deployed or saved, and the first is the
#: preview's. Nothing here is real personal data.
_SAMPLE_TASK = {"title": "Resolve the complaint", "reference": "CMP-2026-000042",
                "due_at": "Thu 24 Dec 2026, 17:00", "role": None}
SAMPLE_VALUES: dict[str, tuple[dict[str, Any], ...]] = {
    "acknowledgement": (
        {"reference": "CMP-2026-000042", "complainant_name": "Ann Example",
         "received_on": "Monday 21 December 2026"},
    ),
    "task_assigned": (
        {"username": "owen", "task_title": "Resolve the complaint",
         "reference": "CMP-2026-000042", "due_at": "Thu 24 Dec 2026, 17:00"},
        {"username": "owen", "task_title": "Review the process definition",
         "reference": None, "due_at": ""},
    ),
    "task_offered": (
        {"username": "quinn", "task_title": "Review the escalated complaint",
         "role": "Quality Manager", "reference": "CMP-2026-000042",
         "due_at": "Thu 24 Dec 2026, 17:00"},
        {"username": "paul", "task_title": "Review the process definition",
         "role": "Process Owner", "reference": None, "due_at": ""},
    ),
    "task_digest": (
        {"username": "owen", "overdue": [_SAMPLE_TASK],
         "due_soon": [{"title": "Send the final response", "reference": "CMP-2026-000040",
                       "due_at": "Fri 08 Jan 2027, 17:00", "role": None}]},
        {"username": "quinn", "overdue": [],
         "due_soon": [{"title": "Review the escalated complaint",
                       "reference": "CMP-2026-000041", "due_at": "Mon 11 Jan 2027, 17:00",
                       "role": "Quality Manager"},
                      {"title": "Review the process definition", "reference": None,
                       "due_at": "Mon 11 Jan 2027, 17:00", "role": None}]},
    ),
}


def template_problems(source: str, name: str | None = None) -> list[tuple[int | None, str]]:
    """Problems of a mail template: its shape, the syntax of both parts and, for a mail
    with sample values (``name`` in SAMPLE_VALUES), a sandboxed rendering with each of
    them. The one check of deploy (``directory_problems``) and of saving in the browser
    (engine/mail_templates.py)."""
    try:
        subject, body, body_line = split_template(source)
    except TemplateRenderError as exc:
        return [(exc.line, exc.message)]
    problems = [(1, message) for _, message in templates.template_errors(subject)]
    problems += [((line or 1) + body_line - 1, message)
                 for line, message in templates.template_errors(body)]
    if problems:
        return problems
    for values in SAMPLE_VALUES.get(name or "", ()):
        try:
            render_source(source, values)
        except TemplateRenderError as exc:
            return [(exc.line, f"{exc.message} (rendering with sample values)")]
    return []


def directory_problems(directory: Path) -> list[tuple[str, int | None, str]]:
    """``(file relative to directory, line, message)`` for every mail template under
    ``directory/mail`` (deploy refuses the set if there is any)."""
    found = []
    mail_dir = Path(directory) / "mail"
    if not mail_dir.is_dir():
        return found
    for file in sorted(mail_dir.glob("*.txt")):
        name = file.relative_to(directory).as_posix()
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            found.append((name, None, f"cannot read the mail template: {exc}"))
            continue
        found += [(name, line, message)
                  for line, message in template_problems(source, file.stem)]
    return found


def load_template(name: str, directory: Path | None = None) -> str:
    path = Path(directory or MAIL_DIR) / f"{name}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateRenderError(f"cannot read the mail template {path.name}: {exc}") from exc


def render_source(source: str, values: Mapping[str, Any]) -> Mail:
    subject, body, body_line = split_template(source)
    try:
        rendered_subject = templates.render_mail(subject, values)
    except TemplateRenderError as exc:
        raise TemplateRenderError(f"in the subject: {exc.message}", line=1) from exc
    try:
        rendered_body = templates.render_mail(body, values)
    except TemplateRenderError as exc:
        line = exc.line + body_line - 1 if exc.line else None
        raise TemplateRenderError(exc.message, line=line) from exc
    return Mail(" ".join(rendered_subject.split()), rendered_body.strip("\n") + "\n")


def render(name: str, values: Mapping[str, Any], directory: Path | None = None,
           conn: Connection | None = None) -> Mail:
    """The mail ``name`` for ``values``; the built-in text if the template fails.

    With ``conn`` (and no ``directory``) the text is the current one of
    engine.mail_templates: the newest version saved in the browser, else the file.
    """
    try:
        source = None
        if conn is not None and directory is None:
            from engine import mail_templates  # it builds on this module

            source = mail_templates.saved_text(conn, name)
        if source is None:
            source = load_template(name, directory)
        return render_source(source, values)
    except TemplateRenderError as exc:
        subject, body = FALLBACK[name]
        fallback = render_source(f"{SUBJECT} {subject}\n\n{body}", values)
        return Mail(fallback.subject, fallback.body, problem=f"{name}.txt: {exc}")


# -- values for templates --------------------------------------------------------------------

def _zone() -> ZoneInfo:
    return ZoneInfo(settings.load().timezone)


def local_day(instant: datetime | None) -> str:
    """``Monday 21 December 2026`` in the company's zone."""
    return instant.astimezone(_zone()).strftime("%A %d %B %Y") if instant else ""


def local_time(instant: datetime | None) -> str:
    """``Mon 21 Dec 2026, 14:30`` in the company's zone (as on the web pages)."""
    return instant.astimezone(_zone()).strftime("%a %d %b %Y, %H:%M") if instant else ""
