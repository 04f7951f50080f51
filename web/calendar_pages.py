"""Admins: the business calendar (bank holidays in force, company closure days).

The page lists the bank holidays of the configured region (setting
``COMPLAINTS_CALENDAR``) for this year and next, and the company closure days, which
admins add (a date and a reason) and remove. Every change is one transaction, audited
(``closure_day_added`` / ``closure_day_removed``). A change applies to deadlines computed
after it: deadlines already computed are stored with their case and are not moved.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from engine import clock, settings
from engine.calendar import calendar_from_settings
from engine.closures import add_closure_day, remove_closure_day
from engine.models import ClosureDay
from web.auth import current_actor
from web.db import uow

bp = Blueprint("calendar_pages", __name__)

REGION_NAMES = {"GB-ENG": "England", "GB-WLS": "Wales", "GB-SCT": "Scotland",
                "GB-NIR": "Northern Ireland"}
REASON_MAX = 255
#: How far from today a closure day may be entered, in years.
YEARS_AROUND = 10


def _require_admin() -> None:
    if "admin" not in current_user.role_names:
        abort(403, "The business calendar is managed by administrators.")


def _today() -> date:
    return clock.now().astimezone(ZoneInfo(settings.load().timezone)).date()


def _page(status: int = 200, errors: dict[str, str] | None = None,
          values: dict[str, str] | None = None):
    today = _today()
    configured = settings.load()
    bank = calendar_from_settings()  # without closure days: the bank holidays alone
    years = (today.year, today.year + 1)
    holidays = bank.holidays_between(date(years[0], 1, 1), date(years[1], 12, 31))
    with uow(write=False) as work:
        closures = list(work.session.scalars(select(ClosureDay).order_by(ClosureDay.day)))
        work.session.expunge_all()
    return render_template(
        "calendar.html", holidays=holidays, closures=closures, years=years, today=today,
        region=configured.calendar,
        region_name=REGION_NAMES.get(configured.calendar, configured.calendar),
        errors=errors or {}, values=values or {}), status


@bp.get("/admin/calendar")
@login_required
def calendar():
    _require_admin()
    return _page()


def _parse_day(text: str, window: bool = True) -> tuple[date | None, str | None]:
    text = (text or "").strip()
    if not text:
        return None, "Give the date of the closure day."
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, f"“{text[:40]}” is not a date: give it as YYYY-MM-DD, e.g. 2027-12-29."
    if len(text) != 10:
        return None, "Give the date as YYYY-MM-DD, e.g. 2027-12-29."
    if window and abs(day.year - _today().year) > YEARS_AROUND:
        return None, f"Give a date within {YEARS_AROUND} years of today."
    return day, None


@bp.post("/admin/calendar/closures")
@login_required
def add_closure():
    _require_admin()
    values = {"day": request.form.get("day", ""), "reason": request.form.get("reason", "")}
    errors: dict[str, str] = {}
    day, problem = _parse_day(values["day"])
    if problem:
        errors["day"] = problem
    reason = " ".join(values["reason"].split())
    if not reason:
        errors["reason"] = "Give the reason for the closure (e.g. “Office move”)."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"The reason has at most {REASON_MAX} characters."
    if day is not None and not errors:
        bank_holiday = calendar_from_settings().holiday_name(day)
        taken = f"{day:%A %d %B %Y} is already a closure day."
        try:
            with uow() as work:
                if work.session.get(ClosureDay, day) is not None:
                    errors["day"] = taken
                else:
                    add_closure_day(work.session, day, reason, current_actor())
        except IntegrityError:  # another admin added it meanwhile
            errors["day"] = taken
        if not errors:
            note = ""
            if day.weekday() >= 5:
                note = " It is a weekend day, so it changes no business-day count."
            elif bank_holiday:
                note = f" It is also a bank holiday ({bank_holiday})."
            flash(f"{day:%A %d %B %Y} is now a company closure day. It applies to deadlines "
                  f"computed from now on; deadlines already computed are not moved.{note}")
            return redirect(url_for("calendar_pages.calendar"))
    return _page(422, errors, values)


@bp.post("/admin/calendar/closures/<day>/remove")
@login_required
def remove_closure(day: str) -> Response:
    _require_admin()
    parsed, problem = _parse_day(day, window=False)
    if parsed is None:
        abort(404, problem)
    with uow() as work:
        removed = remove_closure_day(work.session, parsed, current_actor())
    if not removed:
        flash(f"{parsed:%A %d %B %Y} is not a closure day: nothing was changed.")
    else:
        flash(f"{parsed:%A %d %B %Y} is no longer a closure day. This applies to deadlines "
              "computed from now on; deadlines already computed are not moved.")
    return redirect(url_for("calendar_pages.calendar"))
