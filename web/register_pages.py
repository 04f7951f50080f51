"""Pages of the Complaints Register (issue 4): the register, its CSV export, a case.

Server-rendered and usable without JavaScript. What a reader sees follows
engine.permissions: need-to-know complaints are in no list, count or export of a user
who may not see them, and their case page is 404; an auditor sees them without the
complainant's personal data. Every read of a need-to-know complaint (a register page
listing it, an export holding it, its case page) is audited as ``complaint_read``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from engine import information_classification
from engine.access_grants import active_grants, grant_access, revoke_access
from engine.audit import Actor
from engine.calendar import iso
from engine.deadlines import records_of
from engine.documents import list_documents
from engine.errors import Forbidden, InvalidData, NotFound
from engine.information_classification import CLASSIFICATION, CSV_COLUMN
from engine.models import Complaint
from engine.permissions import may_grant_access, may_see_complaint, may_see_personal_data
from engine.register import CHANNELS, CLASSIFICATIONS, COMPLAINANT_FIELDS, STATUSES, record_reads
from engine.register_queries import (
    PAGE_SIZE,
    RegisterFilter,
    complaint_by_reference,
    deadline_records,
    deadline_states,
    open_tasks,
    owners,
    register_page,
    register_rows,
    task_state,
    timeline,
)
from web.auth import current_actor
from web.db import uow
from web.owner_pages import owner_choices
from web.queries import page_count

bp = Blueprint("register_pages", __name__)
# The ISMS marking of every page of complaint records (templates/classification_marking.html).
bp.add_app_template_global(information_classification, "information_classification")

WITHHELD = "(withheld)"

#: The export's columns: the register fields of shared/interface.md, the complainant
#: object as ``complainant.*``, the deadlines as one JSON object; last, the ISMS
#: classification of the record ("Confidential", policy 11.1) on every row.
CSV_FIELDS = (
    "reference", "channel", "received_at",
    *(f"complainant.{key}" for key in COMPLAINANT_FIELDS),
    "summary", "description", "product_or_service", "remedy_sought", "classification",
    "personal_data_involved", "data_breach", "owner", "root_cause", "corrective_action",
    "remedial_measures", "resolution_summary", "status", "deadlines", "logged_at",
    "acknowledged_at", "resolved_at", "closed_at", CSV_COLUMN,
)
#: The export's file name carries the classification too.
CSV_FILENAME = f"complaints-register-{CLASSIFICATION.lower()}.csv"

_FILTER_KEYS = ("q", "status", "classification", "channel", "owner", "overdue", "from", "to")
_CHOICES = {"status": STATUSES, "classification": CLASSIFICATIONS, "channel": CHANNELS}


def _parse_filter(args) -> tuple[RegisterFilter, int, dict[str, str], dict[str, str]]:
    """The filter and page of the query string, the values as given, and the errors."""
    given = {key: args.get(key, "").strip() for key in _FILTER_KEYS}
    errors: dict[str, str] = {}
    for key, choices in _CHOICES.items():
        if given[key] and given[key] not in choices:
            errors[key] = f"Choose one of: {', '.join(choices)}."
    if len(given["q"]) > 200:
        errors["q"] = "Search for at most 200 characters."
    if len(given["owner"]) > 80:
        errors["owner"] = "A username has at most 80 characters."
    days: dict[str, date | None] = {}
    for key in ("from", "to"):
        days[key] = None
        if given[key]:
            try:
                days[key] = date.fromisoformat(given[key])
            except ValueError:
                errors[key] = "Give a date as YYYY-MM-DD, e.g. 2026-12-21."
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = "The end of the date range is before its start."
    page_text = args.get("page", "1").strip() or "1"
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 10**6 else None
    if page is None:
        errors["page"] = "The page is a whole number from 1."
        page = 1
    where = RegisterFilter(
        status=given["status"] or None, classification=given["classification"] or None,
        channel=given["channel"] or None, owner=given["owner"] or None,
        q=given["q"] or None, received_from=days["from"], received_to=days["to"],
        overdue=given["overdue"] in ("1", "on", "true", "yes"))
    return where, page, given, errors


def _query_string(given: dict[str, str], **changes: Any) -> str:
    values = {**{k: v for k, v in given.items() if v}, **changes}
    return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _audit_reads(actor: Actor, rows: list[Complaint], via: str) -> None:
    """Reads of need-to-know complaints are audited before the response leaves."""
    if any(row.need_to_know for row in rows):
        with uow() as work:
            record_reads(work.session, actor, rows, via)


def _next_deadline(row: Complaint, records=None):
    return next((d for d in deadline_states(row, records=records)
                 if d.state not in ("met", "met late")), None)


@bp.get("/register")
@login_required
def register() -> tuple[str, int]:
    actor = current_actor()
    where, page, given, errors = _parse_filter(request.args)
    rows: list[Complaint] = []
    total = 0
    with uow(write=False) as work:
        if not errors:
            rows, total = register_page(work.session, actor, where, page, PAGE_SIZE)
        records = records_of(work.session, [row.id for row in rows])
        entries = [(row, _next_deadline(row, records.get(row.id))) for row in rows]
        owner_names = owners(work.session, actor)
        html = render_template(
            "register.html", entries=entries, total=total, page=page,
            pages=page_count(total, PAGE_SIZE), given=given, errors=errors,
            statuses=STATUSES, classifications=CLASSIFICATIONS, channels=CHANNELS,
            owners=owner_names, page_size=PAGE_SIZE,
            page_url=lambda n: url_for("register_pages.register") + "?"
            + _query_string(given, page=n),
            csv_url=url_for("register_pages.register_csv") + (
                "?" + _query_string(given) if _query_string(given) else ""))
    _audit_reads(actor, rows, "register_page")
    return html, 400 if errors else 200


def _cell(value: Any) -> str:
    """One CSV cell; text a spreadsheet would run as a formula is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _csv_row(actor: Actor, row: Complaint) -> list[str]:
    personal = may_see_personal_data(actor, row)
    values = []
    for name in CSV_FIELDS:
        if name.startswith("complainant."):
            value = getattr(row, "complainant_" + name.split(".", 1)[1])
            values.append(_cell(value) if personal else (WITHHELD if value else ""))
        elif name == CSV_COLUMN:
            values.append(CLASSIFICATION)
        else:
            values.append(_cell(getattr(row, name)))
    return values


@bp.get("/register.csv")
@login_required
def register_csv() -> Response:
    actor = current_actor()
    where, _, _, errors = _parse_filter(request.args)
    if errors:
        abort(400, "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    read: list[Complaint] = []
    with uow(write=False) as work:
        for row in register_rows(work.session, actor, where):
            writer.writerow(_csv_row(actor, row))
            if row.need_to_know:
                read.append(row)
    _audit_reads(actor, read, "register_csv")
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{CSV_FILENAME}"'})


@bp.get("/complaints/<reference>")
@login_required
def case(reference: str) -> str:
    actor = current_actor()
    with uow(write=False) as work:
        row = complaint_by_reference(work.session, reference)
        if row is None or not may_see_complaint(actor, row, withholding_personal_data=True):
            abort(404, f"There is no complaint {reference}.")
        tasks = open_tasks(work.session, row.instance_id)
        html = render_template(
            "case.html", c=row, personal=may_see_personal_data(actor, row),
            withheld=WITHHELD, complainant_fields=COMPLAINANT_FIELDS,
            deadlines=deadline_states(row, records=deadline_records(work.session, row.id)),
            tasks=tasks, task_state=task_state,
            events=timeline(work.session, row.instance_id),
            documents=list_documents(work, row.reference),
            may_grant=may_grant_access(actor, row),
            owner_choices=owner_choices(work, actor, row),
            grants=active_grants(work.session, row.id) if may_grant_access(actor, row)
            else [])
    _audit_reads(actor, [row], "case_page")
    return html


def _grant_action(reference: str, action) -> BaseResponse:
    """Run a grant or revocation for the signed-in user; flash the outcome, go back."""
    try:
        with uow() as work:
            message = action(work.session, current_actor())
    except NotFound as error:
        abort(404, str(error))
    except Forbidden as error:
        abort(403, str(error))
    except InvalidData as error:
        message = f"Access was not changed: {error}"
    flash(message)
    return redirect(url_for("register_pages.case", reference=reference))


@bp.post("/complaints/<reference>/access")
@login_required
def grant(reference: str) -> BaseResponse:
    username = request.form.get("username", "")
    reason = request.form.get("reason", "")

    def action(session, actor: Actor) -> str:
        made = grant_access(session, reference, username, reason, actor)
        return f"{made.username} may now see this case."
    return _grant_action(reference, action)


@bp.post("/complaints/<reference>/access/<username>/revoke")
@login_required
def revoke(reference: str, username: str) -> BaseResponse:
    def action(session, actor: Actor) -> str:
        revoke_access(session, reference, username, actor)
        return f"{username} may no longer see this case."
    return _grant_action(reference, action)
