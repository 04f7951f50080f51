"""Pages: recording a complaint received by telephone, letter, in person or e-mail (issue 4).

``GET/POST /complaints/new`` is for signed-in staff. The form uses the register's field
names (shared/interface.md); the date and time received is read on the company's clock
(``datetime-local``, setting ``COMPLAINTS_TIMEZONE``) and may be in the past but never in
the future. After recording, the page shows the reference and the first deadlines the
process computed from the time received (Post/Redirect/Get: the confirmation is kept in
the session for the next page view only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_required

from engine import clock
from engine.calendar import iso, parse_instant
from engine.errors import InvalidData
from engine.permissions import may_record_complaint
from engine.register import SUMMARY_MAX, record_complaint, validate_intake
from web.auth import current_actor
from web.db import uow
from web.form_render import instant_to_local, local_to_instant

bp = Blueprint("intake", __name__)

#: Channels staff record here; ``website`` complaints come in through the public form.
STAFF_CHANNELS = (
    ("telephone", "Telephone"),
    ("letter", "Letter"),
    ("in_person", "In person"),
    ("email", "E-mail"),
)
TEXT_FIELDS = ("summary", "description", "product_or_service", "remedy_sought")
COMPLAINANT_FIELDS = ("name", "email", "phone", "postal_address")
DEADLINE_LABELS = (("log_by", "Log by"), ("acknowledge_by", "Acknowledge by"))
FUTURE_MESSAGE = ("The date and time received cannot be in the future. Enter when the "
                  "complaint reached us (it may be earlier than now, e.g. a letter that "
                  "arrived yesterday).")
_SESSION_KEY = "intake_recorded"

#: The engine's messages in plain words for the people filling in the forms.
_FRIENDLY = {
    "this field is required": "This is required.",
    "not a valid email address": "Enter a valid e-mail address, like name@example.com.",
    "received_at is in the future": FUTURE_MESSAGE,
}


def zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("TIMEZONE") or "Europe/London")


def local_text(value: str | datetime) -> str:
    """An instant on the company's clock with its weekday, e.g. ``Tue 22 Dec 2026, 14:30``."""
    return parse_instant(value).astimezone(zone()).strftime("%a %d %b %Y, %H:%M")


def friendly_errors(fields: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, messages in fields.items():
        friendly = []
        for message in messages:
            text = _FRIENDLY.get(message)
            if text is None:
                text = message[:1].upper() + message[1:]
                if not text.endswith("."):
                    text += "."
            friendly.append(text)
        out[name] = friendly
    return out


def text_value(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "")
    return value if value.strip() else None


def complainant_from(form: Mapping[str, str], names=COMPLAINANT_FIELDS) -> dict[str, Any]:
    return {key: text_value(form, f"complainant.{key}") for key in names}


@bp.route("/complaints/new", methods=["GET", "POST"])
@login_required
def new_complaint():
    actor = current_actor()
    if not may_record_complaint(actor):
        abort(403, description="Recording a complaint needs the staff role.")
    if request.method == "GET":
        recorded = session.pop(_SESSION_KEY, None)
        values = {"received_at": instant_to_local(clock.now(), zone()), "channel": "telephone"}
        return render_template("intake.html", values=values, errors={}, recorded=recorded,
                               channels=STAFF_CHANNELS, summary_max=SUMMARY_MAX)

    form = request.form
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {
        "channel": form.get("channel", ""),
        "complainant": complainant_from(form),
        "personal_data_involved": form.get("personal_data_involved") == "yes",
    }
    for name in TEXT_FIELDS:
        data[name] = text_value(form, name)
    if data["channel"] not in {value for value, _ in STAFF_CHANNELS}:
        errors["channel"] = ["Choose how the complaint reached us."]
    received = form.get("received_at", "").strip()
    if received:
        try:
            instant = local_to_instant(received, zone())
        except ValueError as error:
            errors["received_at"] = [str(error)[:1].upper() + str(error)[1:] + "."]
        else:
            if instant > clock.now():
                errors["received_at"] = [FUTURE_MESSAGE]
            else:
                data["received_at"] = iso(instant)
    else:
        errors["received_at"] = ["Enter the date and time the complaint reached us."]

    if not errors:
        try:
            with uow() as work:
                row = record_complaint(work, data, actor)
                reference = row.reference
                received_at = row.received_at
                deadlines = dict(row.deadlines or {})
        except InvalidData as error:
            errors = friendly_errors(error.fields or {"_body": [str(error)]})
        else:
            session[_SESSION_KEY] = {
                "reference": reference,
                "received_at": local_text(received_at),
                "deadlines": [[label, local_text(deadlines[key])]
                              for key, label in DEADLINE_LABELS if deadlines.get(key)],
            }
            return redirect(url_for("intake.new_complaint"))
    else:
        # Check the other fields too, so that every problem is shown at once.
        probe = {**data, "channel": "telephone"}
        probe.pop("received_at", None)
        try:
            validate_intake(probe)
        except InvalidData as error:
            for name, messages in friendly_errors(error.fields).items():
                errors.setdefault(name, messages)
    return render_template("intake.html", values=form, errors=errors, recorded=None,
                           channels=STAFF_CHANNELS, summary_max=SUMMARY_MAX), 422
