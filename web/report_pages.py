"""The monthly report (policy 12.1) and its CSV export: figures only, no personal data.

Read by the Quality Manager, senior management, auditors and admins (others get 403);
every reading is audited (``report_read``, with the month and whether it was the page or
the export). The figures come from engine/reports.py, counted as the reader may see the
register (need-to-know cases follow engine.permissions).
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, render_template, request
from flask_login import login_required

from engine import clock, reports
from engine.audit import Actor, record
from web.auth import current_actor
from web.db import uow

bp = Blueprint("report_pages", __name__)


def _reader() -> Actor:
    actor = current_actor()
    if not reports.may_read_reports(actor):
        abort(403, "The monthly report is shown to the Quality Manager, senior management, "
                   "auditors and administrators.")
    return actor


def _month() -> tuple[reports.Month, str | None]:
    """The month asked for (default: the last whole month) and the error, if any."""
    given = request.args.get("month", "").strip()
    if not given:
        return reports.last_whole_month(), None
    try:
        return reports.parse_month(given), None
    except ValueError as error:
        return reports.last_whole_month(), str(error)


def _audit(actor: Actor, month: reports.Month, via: str) -> None:
    with uow() as work:
        record(work.session, actor, "report_read",
               details={"report": "monthly", "month": month.label, "via": via})


@bp.get("/reports/monthly")
@login_required
def monthly() -> tuple[str, int]:
    actor = _reader()
    month, error = _month()
    if error:
        return render_template("report_monthly.html", report=None, error=error,
                               given=request.args.get("month", ""),
                               latest=reports.Month.of(clock.now()).label), 400
    with uow(write=False) as work:
        report = reports.monthly_report(work.session, actor, month)
    html = render_template("report_monthly.html", report=report, error=None,
                           given=month.label, latest=reports.Month.of(report.generated_at).label,
                           classes=reports.CLASSES)
    _audit(actor, month, "page")
    return html, 200


def _cell(value: str) -> str:
    """Text a spreadsheet would run as a formula is quoted with ``'``."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/reports/monthly.csv")
@login_required
def monthly_csv() -> Response:
    actor = _reader()
    month, error = _month()
    if error:
        abort(400, error)
    with uow(write=False) as work:
        report = reports.monthly_report(work.session, actor, month)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(reports.CSV_FIELDS)
    for row in reports.figure_rows(report.month):
        writer.writerow([_cell(value) for value in row])
    _audit(actor, month, "csv")
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="complaints-report-{month.label}.csv"'})
