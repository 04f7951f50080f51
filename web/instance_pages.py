"""Admins: the instance inspector and repair actions (issue 6, parts 4 and 5).

The list and the instance page are server-rendered; the diagram is drawn by the bpmn-js
viewer (static/inspector.js) from the JSON of ``diagram``. Every action is a POST with
the CSRF token, a reason and a required confirmation, sent from its own confirmation
page that says what the action does and whether it can be undone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from engine import admin_actions
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.inspection import (
    ELEMENT_STATES,
    INSTANCE_PAGE_SIZE,
    InstanceFilter,
    describe_instance,
    instance_diagrams,
    list_instances,
    masked_case_data,
    process_versions,
)
from engine.instances import COMPLETE, ERROR, RUNNING, SUSPENDED, TERMINATED
from engine.models import Complaint, HumanTask, ProcessInstance
from engine.permissions import may_inspect_instances
from engine.register import record_reads
from engine.roles import ROLES
from web.auth import current_actor
from web.db import uow
from web.queries import page_count

bp = Blueprint("instance_pages", __name__)

STATUSES = (RUNNING, SUSPENDED, ERROR, COMPLETE, TERMINATED)
UNFINISHED = (RUNNING, SUSPENDED, ERROR)

#: What each instance action does, as its confirmation page says it.
ACTIONS: dict[str, dict[str, Any]] = {
    "suspend": {"label": "Suspend", "allowed": (RUNNING,),
                "does": "Its timers stop firing and none of its tasks can be completed "
                        "until it is resumed. Its open tasks and deadlines stay as they are.",
                "undo": "Resume the instance."},
    "resume": {"label": "Resume", "allowed": (SUSPENDED,),
               "does": "Its tasks can be completed again; timers that fell due while it was "
                       "suspended fire at the deadline worker's next round.",
               "undo": "Suspend it again."},
    "terminate": {"label": "Terminate", "allowed": UNFINISHED,
                  "does": "Every open task and timer is cancelled and the process ends here.",
                  "undo": None},
    "retry": {"label": "Retry the failed task", "allowed": (ERROR,),
              "does": "The failed task runs again (with your corrections to its data, if "
                      "any), then the process runs on to its next wait. If it fails again "
                      "the instance stays in error with the new message.",
              "undo": None},
    "migrate": {"label": "Move to a newer version", "allowed": UNFINISHED,
                "does": "The instance continues on the chosen version of its process: its "
                        "open tasks and timers are reset to that version's definitions.",
                "undo": None},
}


def _actor():
    actor = current_actor()
    if not may_inspect_instances(actor):
        abort(403, "The instance inspector is for administrators.")
    return actor


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- the list -------------------------------------------------------------------------------

def _parse_filter(args) -> tuple[InstanceFilter, int, dict[str, str], dict[str, str]]:
    given = {key: args.get(key, "").strip()
             for key in ("status", "process", "version", "error", "timer")}
    errors: dict[str, str] = {}
    if given["status"] and given["status"] not in STATUSES:
        errors["status"] = f"Choose one of: {', '.join(STATUSES)}."
    if len(given["process"]) > 255:
        errors["process"] = "A process id has at most 255 characters."
    version = None
    if given["version"]:
        if given["version"].isdigit() and 0 < int(given["version"]) < 10**6:
            version = int(given["version"])
        else:
            errors["version"] = "The version is a whole number from 1."
    page_text = args.get("page", "1").strip() or "1"
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 10**6 else None
    if page is None:
        errors["page"] = "The page is a whole number from 1."
        page = 1
    where = InstanceFilter(status=given["status"] or None, process_id=given["process"] or None,
                           version=version, in_error=given["error"] in ("1", "on"),
                           waiting_on_timer=given["timer"] in ("1", "on"))
    return where, page, given, errors


@bp.get("/admin/instances")
@login_required
def instances() -> tuple[str, int]:
    _actor()
    where, page, given, errors = _parse_filter(request.args)
    rows, total = [], 0
    with uow(write=False) as work:
        if not errors:
            rows, total = list_instances(work, where, page)
        versions = process_versions(work)

    def page_url(n: int) -> str:
        values = {**{k: v for k, v in given.items() if v}, "page": n}
        return url_for("instance_pages.instances") + "?" + urlencode(values)

    html = render_template("instances.html", rows=rows, total=total, page=page,
                           pages=page_count(total, INSTANCE_PAGE_SIZE), given=given,
                           errors=errors, statuses=STATUSES, versions=versions,
                           page_url=page_url)
    return html, 400 if errors else 200


# -- one instance ---------------------------------------------------------------------------

@bp.get("/admin/instances/<int:instance_id>")
@login_required
def instance(instance_id: int) -> str:
    actor = _actor()
    with uow(write=False) as work:
        try:
            described = describe_instance(work, instance_id, actor)
        except NotFound as error:
            abort(404, str(error))
        data, masked = masked_case_data(work, instance_id, actor)
        session = work.session
        human_tasks = session.query(HumanTask).filter(
            HumanTask.instance_id == instance_id).order_by(HumanTask.created_at,
                                                           HumanTask.id).all()
        complaint = session.query(Complaint).filter(
            Complaint.instance_id == instance_id).first()
        newer = admin_actions.newer_versions(work, instance_id)
        html = render_template(
            "instance.html", i=described, data_json=admin_actions.data_json(data),
            masked=masked, human_tasks=human_tasks, complaint=complaint, newer=newer,
            actions=ACTIONS, instant=_instant, element_states=ELEMENT_STATES,
            unfinished=UNFINISHED)
    if complaint is not None and complaint.need_to_know:
        with uow() as work:
            record_reads(work.session, actor, [complaint], "instance_page")
    return html


@bp.get("/admin/instances/<int:instance_id>/diagram")
@login_required
def diagram(instance_id: int) -> Response:
    """The diagrams of the instance with the elements to mark, for static/inspector.js."""
    _actor()
    with uow(write=False) as work:
        try:
            diagrams = instance_diagrams(work, instance_id)
        except NotFound as error:
            abort(404, str(error))
    return jsonify({"states": list(ELEMENT_STATES), "diagrams": diagrams})


# -- actions on the instance ----------------------------------------------------------------

def _instance_row(work, instance_id: int) -> ProcessInstance:
    row = work.session.get(ProcessInstance, instance_id)
    if row is None:
        abort(404, f"There is no process instance {instance_id}.")
    return row


def _confirm_page(instance_id: int, action: str, status: int = 200,
                  errors: dict[str, list[str]] | None = None, form: dict | None = None):
    actor = _actor()
    spec = ACTIONS[action]
    with uow(write=False) as work:
        row = _instance_row(work, instance_id)
        context: dict[str, Any] = {"row": row, "version": row.definition.version}
        if action == "retry":
            context["failed"] = failed = admin_actions.failed_task(work, instance_id, actor)
            context["data_text"] = admin_actions.data_json(failed.data) if failed else ""
            context["may_correct"] = admin_actions.may_correct_data(work, instance_id, actor)
        if action == "migrate":
            context["newer"] = admin_actions.newer_versions(work, instance_id)
            context["plan"] = None
            chosen = (form or request.values).get("definition", "")
            if chosen:
                if not chosen.isdigit():
                    errors = {**(errors or {}), "definition": ["Choose a version."]}
                    status = 400
                else:
                    try:
                        context["plan"] = admin_actions.plan_migration(
                            work, instance_id, int(chosen), actor)
                    except InvalidData as error:
                        errors = {**(errors or {}), **error.fields}
                        status = 422
        html = render_template("instance_action.html", action=action, spec=spec,
                               errors=errors or {}, form=form or {}, **context)
    return html, status


@bp.get("/admin/instances/<int:instance_id>/actions/<action>")
@login_required
def confirm(instance_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    return _confirm_page(instance_id, action)


@bp.post("/admin/instances/<int:instance_id>/actions/<action>")
@login_required
def act(instance_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    actor = _actor()
    form = request.form.to_dict()
    errors: dict[str, list[str]] = {}
    if form.get("confirm") != "yes":
        errors["confirm"] = ["Tick the box to confirm."]
    corrected = None
    try:
        reason = admin_actions.check_reason(form.get("reason"))
        if action == "retry" and form.get("data") is not None:
            corrected = admin_actions.parse_corrected_data(form["data"])
    except InvalidData as error:
        errors.update(error.fields)
    definition = form.get("definition", "")
    if action == "migrate" and not definition.isdigit():
        errors["definition"] = ["Choose a version."]
    if errors:
        return _confirm_page(instance_id, action, 422, errors, form)
    try:
        with uow() as work:
            if action == "suspend":
                admin_actions.suspend_instance(work, instance_id, reason, actor)
                message = "The instance is suspended."
            elif action == "resume":
                admin_actions.resume_instance(work, instance_id, reason, actor)
                message = "The instance is running again."
            elif action == "terminate":
                admin_actions.terminate_instance(work, instance_id, reason, actor)
                message = "The instance is terminated."
            elif action == "retry":
                ref = admin_actions.retry_failed_task(work, instance_id, reason, actor,
                                                      corrected)
                message = ("The task ran; the instance is " + ref.status + "." if
                           ref.status != ERROR else
                           "The task failed again; the instance is still in error.")
            else:
                ref = admin_actions.migrate_instance(work, instance_id, int(definition),
                                                     reason, actor)
                message = "The instance now runs on the chosen version."
    except NotFound as error:
        abort(404, str(error))
    except Forbidden as error:
        abort(403, str(error))
    except InvalidData as error:
        return _confirm_page(instance_id, action, 422, {"_": [str(error)], **error.fields},
                             form)
    except Conflict as error:
        flash(f"Nothing was changed: {error}")
        return redirect(url_for("instance_pages.instance", instance_id=instance_id))
    flash(message)
    return redirect(url_for("instance_pages.instance", instance_id=instance_id))


# -- reassigning a task ---------------------------------------------------------------------

def _reassign_page(instance_id: int, task_id: str, status: int = 200,
                   errors: dict[str, list[str]] | None = None, form: dict | None = None):
    _actor()
    with uow(write=False) as work:
        row = _instance_row(work, instance_id)
        task = work.session.get(HumanTask, task_id)
        if task is None or task.instance_id != instance_id:
            abort(404, "There is no such task in this instance.")
        html = render_template("instance_reassign.html", row=row, task=task, roles=ROLES,
                               errors=errors or {}, form=form or {})
    return html, status


@bp.get("/admin/instances/<int:instance_id>/tasks/<task_id>/reassign")
@login_required
def reassign(instance_id: int, task_id: str):
    return _reassign_page(instance_id, task_id)


@bp.post("/admin/instances/<int:instance_id>/tasks/<task_id>/reassign")
@login_required
def reassign_post(instance_id: int, task_id: str):
    actor = _actor()
    form = request.form.to_dict()
    errors: dict[str, list[str]] = {}
    if form.get("confirm") != "yes":
        errors["confirm"] = ["Tick the box to confirm."]
    target = form.get("target", "")
    role = form.get("role") if target == "role" else None
    assignee = form.get("assignee") if target == "user" else None
    if target not in ("role", "user"):
        errors["target"] = ["Choose a role or a user."]
    if not errors:
        with uow(write=False) as work:
            task = work.session.get(HumanTask, task_id)
            if task is None or task.instance_id != instance_id:
                abort(404, "There is no such task in this instance.")
        try:
            with uow() as work:
                admin_actions.reassign_task(work, task_id, form.get("reason", ""), actor,
                                            role=role, assignee=assignee)
        except NotFound as error:
            abort(404, str(error))
        except InvalidData as error:
            errors.update({"_": [str(error)], **error.fields})
        except Conflict as error:
            flash(f"Nothing was changed: {error}")
            return redirect(url_for("instance_pages.instance", instance_id=instance_id))
        else:
            flash(f"The task now goes to {assignee or role.replace('_', ' ')}.")
            return redirect(url_for("instance_pages.instance", instance_id=instance_id))
    return _reassign_page(instance_id, task_id, 422, errors, form)


def pretty(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@bp.app_template_filter("instance_json")
def _instance_json(value: Any) -> str:
    return pretty(value)
