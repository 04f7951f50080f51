"""The task page (issue 4): instructions, the case beside the form, and completing it.

The form comes from the task's definition version (its ``forms/<name>`` JSON Schema and
the UI schema named by ``formUiSchemaFilename``), rendered and read by web.form_render.
Nothing is lost on a problem: form errors (422) and a task taken meanwhile (409) show
the page again with what was typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required
from markupsafe import Markup

from engine.audit import Actor
from engine.calendar import parse_instant
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
    schema: dict[str, Any] | None
    ui_schema: dict[str, Any] | None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> form_render.FieldList:
        if not self.schema:
            return form_render.FieldList()
        return form_render.fields_for(self.schema, self.ui_schema)

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
    return TaskView(task, case, complaint, schema, ui_schema, sources)


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


@bp.post("/tasks/<task_id>")
@login_required
def submit(task_id: str):
    actor = current_actor()
    view = _load(task_id, actor)
    taken = _taken_message(view, actor)
    if taken:
        return _page(view, 409, values=request.form, problem=taken)
    timezone = current_app.config.get("TIMEZONE") or form_render.DEFAULT_TIMEZONE
    if view.schema is not None:
        data, errors = form_render.validate(view.schema, view.ui_schema, request.form,
                                            view.sources, view.task.form, timezone)
        if errors:
            return _page(view, 422, errors=errors, values=request.form)
    else:
        data = {}
    try:
        with uow() as work:
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
        return _page(view, 409, values=request.form, problem=message)
    except InvalidData as error:
        fields = view.fields.by_name
        errors: dict[str, list[str]] = {}
        for key, messages in (error.fields or {"_form": [str(error)]}).items():
            name = key if key in fields else "_form"
            errors.setdefault(name, []).extend(messages)
        return _page(view, 422, errors=errors, values=request.form)
    flash("Task completed")
    return redirect(url_for("inbox.inbox"))
