"""Mail templates edited in the browser by process owners and admins (issue 5, "Mail").

* ``GET /definitions/mail``: every template, what it is for, its current version and
  who changed it when.
* ``GET /definitions/mail/<name>``: the current text in a textarea, its preview with
  sample values, the change note, and the versions below.
* ``POST /definitions/mail/<name>``: the "Preview" button (``action=preview``: the page
  again with the typed text rendered, nothing saved) or "Save" (a new version; errors
  are shown at the field with what was typed kept).
* ``POST /definitions/mail/<name>/preview``: the preview as an HTML fragment, for the
  live preview of web/static/mail_templates.js (CSRF token in ``X-CSRF-Token``).

Anyone else gets 403. The engine (engine/mail_templates.py) checks, renders in the
sandbox, saves in one transaction and audits.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from engine import mail_templates
from engine.audit import Actor
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from web.auth import current_actor
from web.db import uow

bp = Blueprint("mail_template_pages", __name__)


def _editor() -> Actor:
    actor = current_actor()
    if not mail_templates.may_edit(actor):
        abort(403, "Mail templates are edited by process owners and admins.")
    return actor


def _known(name: str) -> None:
    if not mail_templates.NAME_PATTERN.fullmatch(name):
        abort(404, f"There is no mail template {name}.")


@bp.get("/definitions/mail")
@login_required
def templates() -> str:
    _editor()
    with uow(write=False) as work:
        rows = mail_templates.list_templates(work.session)
    return render_template("mail_templates.html", templates=rows)


def _edit_page(name: str, status: int = 200, *, text: str | None = None,
               note: str = "", based_on: str | None = None,
               errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
    with uow(write=False) as work:
        try:
            now = mail_templates.current(work.session, name)
        except NotFound:
            abort(404, f"There is no mail template {name}.")
        versions = mail_templates.history(work.session, name)
    typed = now.text if text is None else text
    return render_template(
        "mail_template.html", current=now, text=typed, note=note,
        based_on=based_on if based_on is not None else _version_field(now.version),
        preview=mail_templates.preview(name, typed), versions=versions,
        shipped=mail_templates.shipped_text(name), errors=errors or {}), status


def _version_field(version: int | None) -> str:
    return "" if version is None else str(version)


@bp.get("/definitions/mail/<name>")
@login_required
def edit(name: str) -> tuple[str, int]:
    _editor()
    _known(name)
    return _edit_page(name)


@bp.post("/definitions/mail/<name>")
@login_required
def save(name: str) -> tuple[str, int] | Response:
    actor = _editor()
    _known(name)
    text = mail_templates.normalise(request.form.get("text", ""))
    note = request.form.get("change_note", "")
    based_on = request.form.get("based_on_version", "")
    if request.form.get("action") == "preview":
        return _edit_page(name, text=text, note=note, based_on=based_on)
    base = int(based_on) if based_on.isdigit() else None
    try:
        with uow() as work:
            row = mail_templates.save(work.session, name, text, note, actor, base,
                                      check_base=True)
            version = row.version
    except Forbidden as error:
        abort(403, str(error))
    except NotFound as error:
        abort(404, str(error))
    except InvalidData as error:
        return _edit_page(name, 422, text=text, note=note, based_on=based_on,
                          errors=error.fields or {"text": [str(error)]})
    except Conflict as error:
        return _edit_page(name, 409, text=text, note=note, based_on=based_on,
                          errors={"text": [str(error)]})
    flash(f"Version {version} of the {name} mail was saved: the next {name} mail uses it.")
    return redirect(url_for("mail_template_pages.edit", name=name), 303)


@bp.post("/definitions/mail/<name>/preview")
@login_required
def preview(name: str) -> str:
    _editor()
    _known(name)
    with uow(write=False) as work:
        if name not in mail_templates.names(work.session):
            abort(404, f"There is no mail template {name}.")
    text = request.form.get("text", "")
    return render_template("mail_template_preview.html",
                           preview=mail_templates.preview(name, text))
