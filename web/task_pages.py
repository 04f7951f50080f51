"""The task page (issue 4): instructions, the case beside the form, and completing it.

The form comes from the task's definition version (its ``forms/<name>`` JSON Schema and
the UI schema named by ``formUiSchemaFilename``), rendered and read by web.form_render.
Nothing is lost on a problem: form errors (422) and a task taken meanwhile (409) show
the page again with what was typed.

Evidence fields (``"format": "evidence"``, engine/forms.py) are file inputs: the form is
sent as multipart, each file is checked against the evidence store's type and size
limits (engine/documents.py; a refused file is an error at its field, the other answers
are kept) and, when the whole form is valid, stored with the task's complaint in the
same transaction that completes the task (audited ``document_added``; a conflict rolls
both back). The form data holds the references ``{"document_id", "filename"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.exceptions import RequestEntityTooLarge

from engine import clock, deadlines
from engine.audit import Actor
from engine.calendar import parse_instant
from engine.documents import (
    check_document,
    content_type_of,
    evidence_reference,
    max_bytes,
    safe_filename,
    store_document,
)
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.forms import form_schema, form_source_key
from engine.instances import complete_task
from engine.models import Complaint, HumanTask
from engine.permissions import may_see_complaint, may_work_on
from engine.register import record_reads
from web import form_render, queries
from web.auth import current_actor
from web.db import uow

bp = Blueprint("task_pages", __name__)

#: Deadlines of the register row, in the order shown, with their labels.
DEADLINE_LABELS = {
    "log_by": "Log by",
    "acknowledge_by": "Acknowledge by",
    "ico_notify_by": "Notify the ICO by",
    "resolve_by": "Resolve by",
}


@dataclass
class TaskView:
    """Everything the page shows, read in one unit of work and detached from it."""

    task: HumanTask
    case: str
    complaint: Complaint | None  # only when the user may see the register record
    reference: str | None  # the complaint's reference (None for another process)
    schema: dict[str, Any] | None
    ui_schema: dict[str, Any] | None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> form_render.FieldList:
        if not self.schema:
            return form_render.FieldList()
        return form_render.fields_for(self.schema, self.ui_schema)

    @property
    def due_state(self) -> tuple[str, str] | None:
        """(code, words) of the task's due time now: on time, due soon or overdue (the one
        rule of engine.deadlines); None without a due time."""
        if self.task.due_at is None:
            return None
        code = deadlines.deadline_state(self.task.created_at, self.task.due_at, None,
                                        clock.now())
        return code, deadlines.STATE_WORDS[code]

    @property
    def instruction_lines(self) -> list[str]:
        """The instructions as plain text lines. The engine gives HTML-escaped text whose
        markup (from the uploaded definition) is not trusted: it is unescaped here and
        escaped once more by the page, so it shows as text, never as HTML."""
        if not self.task.instructions:
            return []
        text = Markup(self.task.instructions).unescape()
        return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    @property
    def deadlines(self) -> list[tuple[str, str]]:
        """(label, instant) of the register row's deadlines."""
        items = dict((self.complaint.deadlines or {}) if self.complaint else {})
        ordered = [key for key in DEADLINE_LABELS if key in items]
        ordered += sorted(key for key in items if key not in DEADLINE_LABELS)
        result = []
        for key in ordered:
            try:
                when: Any = parse_instant(items[key])
            except (ValueError, TypeError):
                when = items[key]
            result.append((DEADLINE_LABELS.get(key, form_render.humanise(key)), when))
        return result


def _load(task_id: str, actor: Actor) -> TaskView:
    """The task as the actor may see it; 404 when it does not exist for them."""
    with uow(write=False) as work:
        session = work.session
        task = queries.task_by_id(session, task_id)
        if task is None or not (may_work_on(actor, task) or task.claimed_by == actor.username):
            abort(404)
        instance = queries.instance_by_id(session, task.instance_id)
        if instance is None:  # pragma: no cover - a task row always has its instance
            abort(404)
        sources = dict(instance.definition.sources or {})
        schema = form_schema(sources, task.form)
        ui_name = next((entry.get("ui_form") for entry in instance.definition.user_tasks or []
                        if entry.get("bpmn_id") == task.bpmn_id), None)
        ui_text = sources.get(form_source_key(ui_name)) if ui_name else None
        ui_schema = json.loads(ui_text) if ui_text else None
        row = queries.complaint_by_instance(session, task.instance_id)
        case = row.reference if row is not None else instance.process_id
        complaint = row if row is not None and may_see_complaint(actor, row) else None
        session.expunge_all()
    if complaint is not None and complaint.need_to_know:
        with uow() as work:
            record_reads(work.session, actor, [complaint], "task")
    return TaskView(task, case, complaint, row.reference if row is not None else None,
                    schema, ui_schema, sources)


KEPT = " What you typed is shown below, so nothing is lost."


def _taken_message(view: TaskView, actor: Actor, typed: bool = True) -> str | None:
    """Why the task cannot be completed by ``actor`` now, or None."""
    task = view.task
    kept = KEPT if typed else ""
    if task.state != "ready":
        who = f" by {task.completed_by}" if task.completed_by else ""
        return f"This task is no longer open: it was {task.state}{who}.{kept}"
    if task.claimed_by and task.claimed_by != actor.username:
        return (f"This task is claimed by {task.claimed_by}, so you cannot complete it "
                f"now.{kept}")
    return None


def _page(view: TaskView, status: int = 200, errors: dict[str, list[str]] | None = None,
          values: Any = None, problem: str | None = None, closed: bool = False):
    return render_template("task.html", view=view, task=view.task, fields=view.fields,
                           errors=errors or {}, values=values or {}, problem=problem,
                           closed=closed), status


@bp.get("/tasks/<task_id>")
@login_required
def task_page(task_id: str):
    actor = current_actor()
    view = _load(task_id, actor)
    return _page(view, problem=_taken_message(view, actor, typed=False),
                 closed=view.task.state != "ready")


@dataclass
class Upload:
    """A file chosen for an evidence field, checked but not yet stored."""

    filename: str
    content_type: str
    data: bytes


def _uploads(view: TaskView) -> tuple[dict[str, list[Upload]], dict[str, list[str]]]:
    """The files posted for the evidence fields, checked against the store's limits,
    and the errors (per field) of those that are refused."""
    uploads: dict[str, list[Upload]] = {}
    errors: dict[str, list[str]] = {}
    limit = max_bytes()
    for f in view.fields:
        if not f.evidence:
            continue
        for part in request.files.getlist(f.name):
            if not part or not part.filename:
                continue  # the input was left empty
            name = safe_filename(part.filename)
            data = part.read(limit + 1)
            kind = content_type_of(part.filename, part.mimetype)
            try:
                kind = check_document(kind, data)
            except InvalidData as error:
                errors.setdefault(f.name, []).append(_refused(name, kind, error, limit))
                continue
            uploads.setdefault(f.name, []).append(Upload(name, kind, data))
        if uploads.get(f.name) and view.reference is None:
            errors.setdefault(f.name, []).append(
                "this task is not part of a complaint, so it cannot keep evidence")
    return uploads, errors


def _refused(name: str, kind: str, error: InvalidData, limit: int) -> str:
    fields = error.fields or {}
    if "content_type" in fields:
        return (f"{name} is not a file type that can be kept ({kind or 'unknown type'}); "
                "choose a PDF, PNG or JPEG image, plain text or a saved e-mail")
    if "data" in fields and fields["data"] == ["empty"]:
        return f"{name} is empty"
    return f"{name} is too big: at most {_size(limit)} a file"


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


def _provisional(uploads: dict[str, list[Upload]]) -> dict[str, list[dict]]:
    """References for checking the form before anything is stored (ids are made up)."""
    return {name: [{"document_id": n + 1, "filename": u.filename} for n, u in enumerate(files)]
            for name, files in uploads.items()}


def _choose_again(uploads: dict[str, list[Upload]], errors: dict[str, list[str]],
                  why: str = " because of the other problems") -> None:
    """Browsers cannot fill a file input again: say which files must be chosen again."""
    for name, files in uploads.items():
        if files:
            chosen = ", ".join(u.filename for u in files)
            errors.setdefault(name, []).append(
                f"{chosen} {'was' if len(files) == 1 else 'were'} not kept{why}: "
                f"choose {'it' if len(files) == 1 else 'them'} again")


@bp.post("/tasks/<task_id>")
@login_required
def submit(task_id: str):
    actor = current_actor()
    view = _load(task_id, actor)
    taken = _taken_message(view, actor)
    uploads, upload_errors = _uploads(view)
    if taken:
        errors = {}
        _choose_again(uploads, errors, why="")
        return _page(view, 409, values=request.form, problem=taken, errors=errors)
    timezone = current_app.config.get("TIMEZONE") or form_render.DEFAULT_TIMEZONE
    if view.schema is not None:
        data, errors = form_render.validate(view.schema, view.ui_schema, request.form,
                                            view.sources, view.task.form, timezone,
                                            uploads=_provisional(uploads))
        for name, messages in upload_errors.items():
            errors.setdefault(name, []).extend(messages)
        if errors:
            _choose_again(uploads, errors)
            return _page(view, 422, errors=errors, values=request.form)
    else:
        data = {}
    try:
        with uow() as work:
            for name, files in uploads.items():
                data[name] = [evidence_reference(store_document(
                    work, view.reference, u.filename, u.content_type, u.data, actor))
                    for u in files]
            complete_task(work, task_id, data, actor)
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except Conflict:
        view = _load(task_id, actor)
        message = _taken_message(view, actor) or (
            "Someone else changed this case meanwhile, so your answers were not saved. "
            "What you typed is shown below: check it and send it again.")
        errors = {}
        _choose_again(uploads, errors, why="")
        return _page(view, 409, values=request.form, problem=message, errors=errors)
    except InvalidData as error:
        fields = view.fields.by_name
        errors: dict[str, list[str]] = {}
        for key, messages in (error.fields or {"_form": [str(error)]}).items():
            name = key if key in fields else "_form"
            errors.setdefault(name, []).extend(messages)
        _choose_again(uploads, errors)
        return _page(view, 422, errors=errors, values=request.form)
    flash("Task completed")
    return redirect(url_for("inbox.inbox"))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge):
    """A form (with its files) over the app's size limit cannot even be read."""
    task_id = (request.view_args or {}).get("task_id")
    if request.endpoint != "task_pages.submit" or not task_id \
            or not current_user.is_authenticated:
        from web import _http_error  # the application's page for any other case

        return _http_error(error)
    view = _load(task_id, current_actor())
    evidence = [f.name for f in view.fields if f.evidence]
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    message = (f"the files sent were too big together (at most {_size(limit)} in all): "
               "choose fewer or smaller files")
    return _page(view, 413, errors={(evidence[0] if evidence else "_form"): [message]},
                 problem="Nothing was saved, and what you typed could not be read because "
                         "the files were too big: please enter your answers again.")
