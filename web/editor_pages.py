"""The BPMN editor: drafts, validation, scenarios, difference, deploy (process owners, admins).

``GET /definitions/<process_id>/edit`` is the page (bpmn-js modeler, web/static/editor.js).
It works on the signed-in user's draft (engine.drafts), through JSON endpoints under
``/definitions/<process_id>/draft``; every POST carries the CSRF token in the
``X-CSRF-Token`` header (or the form field, for the plain forms that open and discard a
draft). The engine does all checking; these views only translate.
"""

from __future__ import annotations

import json
from functools import wraps

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    render_template_string,
    request,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from engine import drafts
from engine.definition_diff import diff_files
from engine.definition_files.forms import _check_form
from engine.errors import Conflict, InvalidData, NotFound
from web import form_render
from web.auth import current_actor
from web.db import uow

bp = Blueprint("editor_pages", __name__)

EDITOR_ROLES = frozenset({"process_owner", "admin"})
MAX_IMPORT_BYTES = 5 * 1024 * 1024
_PREVIEW = ('{% from "form_fields.html" import render_fields %}'
            "{{ render_fields(fields, {}, {}) }}")


def editor_required(view):
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if current_user.role_names.isdisjoint(EDITOR_ROLES):
            abort(403, "Only process owners and administrators may edit process definitions.")
        return view(*args, **kwargs)
    return wrapped


def _error(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def _engine_error(exc: Exception):
    if isinstance(exc, NotFound):
        return _error(404, "not_found", str(exc))
    if isinstance(exc, Conflict):
        return _error(409, "conflict", str(exc))
    assert isinstance(exc, InvalidData)
    return _error(422, "invalid", str(exc), exc.fields)


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "send a JSON object")
    return body


# -- the page and the plain forms ---------------------------------------------------------


@bp.get("/definitions/<process_id>/edit")
@editor_required
def edit(process_id: str):
    with uow(write=False) as work:
        current = drafts.current_version(work.session, process_id)
        if current is None:
            abort(404, f'There is no deployed process "{process_id}".')
        draft = drafts.find_draft(work.session, process_id, current_user.username)
        view = {
            "process_id": process_id, "name": current.name, "version": current.version,
            "deployed_by": current.deployed_by, "deployed_at": current.deployed_at,
            "draft": draft is not None,
            "based_on": draft.based_on_version if draft else None,
            "updated_at": draft.updated_at if draft else None,
            "included_in": drafts.including_processes(work.session, process_id),
        }
    return render_template("editor.html", view=view)


@bp.post("/definitions/<process_id>/draft")
@editor_required
def open_draft(process_id: str):
    try:
        with uow() as work:
            drafts.open_draft(work.session, process_id, current_actor())
    except NotFound as exc:
        abort(404, str(exc))
    return redirect(url_for("editor_pages.edit", process_id=process_id))


@bp.post("/definitions/<process_id>/draft/discard")
@editor_required
def discard(process_id: str):
    with uow() as work:
        found = drafts.discard_draft(work.session, process_id, current_actor())
    flash("Your draft was discarded." if found else "You had no draft of this process.")
    return redirect(url_for("editor_pages.edit", process_id=process_id))


# -- JSON endpoints -----------------------------------------------------------------------


def _draft_files(process_id: str) -> dict[str, str]:
    with uow(write=False) as work:
        draft = drafts.find_draft(work.session, process_id, current_user.username)
        if draft is None:  # a JSON answer: only the page's script calls these endpoints
            abort(_error(404, "not_found",
                         "You have no draft of this process: open the editor again."))
        return dict(draft.files)


@bp.get("/definitions/<process_id>/draft.json")
@editor_required
def draft_json(process_id: str):
    with uow(write=False) as work:
        draft = drafts.find_draft(work.session, process_id, current_user.username)
        current = drafts.current_version(work.session, process_id)
        if draft is None or current is None:
            return _error(404, "not_found", "You have no draft of this process.")
        return jsonify({"process_id": process_id, "based_on_version": draft.based_on_version,
                        "current_version": current.version, "files": draft.files,
                        "updated_at": draft.updated_at.isoformat()})


@bp.post("/definitions/<process_id>/draft/files")
@editor_required
def save(process_id: str):
    body = _json_body()
    changed, removed = body.get("changed") or {}, body.get("removed") or []
    if not isinstance(changed, dict) or not isinstance(removed, list):
        return _error(400, "bad_request", "changed is an object of file texts, removed a list")
    try:
        with uow() as work:
            draft = drafts.save_files(work.session, process_id, current_actor(), changed,
                                      tuple(str(n) for n in removed))
            names = sorted(draft.files)
    except (NotFound, InvalidData) as exc:
        return _engine_error(exc)
    return jsonify({"saved": sorted(changed), "removed": sorted(removed), "files": names})


@bp.post("/definitions/<process_id>/draft/import")
@editor_required
def import_file(process_id: str):
    """Add a diagram from another tool (or any .bpmn/.dmn file) to the draft."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _error(422, "invalid", "choose a .bpmn or .dmn file", {"file": ["no file"]})
    data = upload.read(MAX_IMPORT_BYTES + 1)
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
    if len(data) > MAX_IMPORT_BYTES:
        return _error(422, "invalid", "the file is too large", {"file": ["at most 5 MiB"]})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _error(422, "invalid", "the file is not UTF-8 text", {"file": ["not UTF-8"]})
    try:
        with uow() as work:
            drafts.save_files(work.session, process_id, current_actor(), {name: text})
    except (NotFound, InvalidData) as exc:
        return _engine_error(exc)
    return jsonify({"imported": name, "problems": [p.as_dict() for p in drafts.validate(
        _draft_files(process_id)) if p.file == name]})


@bp.post("/definitions/<process_id>/draft/validate")
@editor_required
def validate(process_id: str):
    problems = drafts.validate(_draft_files(process_id))
    return jsonify({"ok": not problems, "problems": [p.as_dict() for p in problems]})


@bp.post("/definitions/<process_id>/draft/scenarios")
@editor_required
def scenarios(process_id: str):
    files = _draft_files(process_id)
    report = drafts.run_scenarios(files)
    problems = drafts.validate(files) if report.problems else []
    return jsonify({
        "ok": report.ok, "summary": report.summary(),
        "problems": [p.as_dict() for p in problems],
        "results": [{"name": r.name, "file": r.file, "passed": r.passed,
                     "failures": list(r.failures),
                     "deadline_changes": drafts.deadline_changes(r)} for r in report.results],
    })


@bp.post("/definitions/<process_id>/draft/accept-deadline")
@editor_required
def accept_deadline(process_id: str):
    body = _json_body()
    try:
        with uow() as work:
            drafts.accept_deadline(work.session, process_id, current_actor(),
                                   str(body.get("file", "")), str(body.get("deadline", "")),
                                   str(body.get("value", "")))
    except (NotFound, InvalidData) as exc:
        return _engine_error(exc)
    return jsonify({"ok": True})


@bp.get("/definitions/<process_id>/draft/diff")
@editor_required
def diff(process_id: str):
    files = _draft_files(process_id)
    with uow(write=False) as work:
        try:
            current, old = drafts.version_files(work.session, process_id)
        except NotFound as exc:
            return _engine_error(exc)
        version = current.version
    changes = diff_files(old, files)
    return jsonify({"against_version": version, "changes": [c.as_dict() for c in changes]})


@bp.post("/definitions/<process_id>/draft/deploy")
@editor_required
def deploy(process_id: str):
    body = request.get_json(silent=True) if request.is_json else request.form
    note = (body or {}).get("change_note")
    try:
        drafts.check_note(note)
        files = _draft_files(process_id)
        drafts.check_draft(files)  # before the write transaction: scenarios take a while
        with uow() as work:
            deployed = drafts.deploy_draft(work.session, process_id, current_actor(), note,
                                           checked_files=files)
    except (NotFound, InvalidData, Conflict) as exc:
        return _engine_error(exc)
    return jsonify({"deployed": [{"process_id": d.process_id, "version": d.version,
                                  "changed": d.changed} for d in deployed],
                    "message": "Deployed: " + ", ".join(str(d) for d in deployed if d.changed)})


@bp.post("/definitions/form-preview")
@editor_required
def form_preview():
    """The form a JSON Schema (and optional UI schema) renders to, as the task page does."""
    body = _json_body()
    schema_text, ui_text = body.get("schema") or "", body.get("ui_schema") or ""
    problems = [str(p) for p in _check_form("forms/form.json", schema_text.encode(), False)]
    ui = None
    if ui_text.strip():
        ui_problems = _check_form("forms/form.ui.json", ui_text.encode(), True)
        problems += [str(p) for p in ui_problems]
        if not ui_problems:
            ui = json.loads(ui_text)
    if problems:
        return jsonify({"ok": False, "problems": problems, "html": ""})
    try:
        fields = form_render.fields_for(json.loads(schema_text), ui)
        html = render_template_string(_PREVIEW, fields=fields)
    except Exception as exc:  # noqa: BLE001 - a schema the renderer cannot show is reported
        return jsonify({"ok": False, "problems": [f"the form cannot be shown: {exc}"],
                        "html": ""})
    return jsonify({"ok": True, "problems": [], "html": html})
