"""Process definitions: versions, downloads, owners and the annual review (issue 6).

* ``/definitions``: every deployed process with its current version, owner, review due
  date and state, and running instances.
* ``/definitions/<process_id>``: every version (who deployed it, when, the change note,
  the running instances on it), downloads of a version's files (process owners and
  admins), the owner and review interval (changed by admins and the Quality Manager),
  and the review records.
* ``/reviews``: the dashboard of reviews due within DUE_SOON_DAYS and overdue, with the
  reviews under way; process owners and the Quality Manager start a review there.
* ``/definitions/<process_id>/reviews/<id>``: the one-page review record (printable),
  also as plain text.

Readers are the holders of engine.permissions.DEFINITION_READER_ROLES; anyone else gets
403. Every change is one unit of work and audited by the engine.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import login_required
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from engine import governance
from engine import reviews as review_engine
from engine.audit import Actor
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import ProcessDefinition, ProcessInstance, User, UserRole
from engine.permissions import (
    may_change_governance,
    may_download_definition,
    may_inspect_instances,
    may_start_review,
    may_view_definitions,
)
from web.auth import current_actor
from web.db import uow

bp = Blueprint("definition_pages", __name__)

_MEDIA_TYPES = {".bpmn": "application/xml", ".dmn": "application/xml",
                ".json": "application/json"}


def _reader() -> Actor:
    actor = current_actor()
    if not may_view_definitions(actor):
        abort(403, "Process definitions are shown to process owners, the Quality Manager, "
                   "Senior Management, auditors and admins.")
    return actor


def _day(value: date | None) -> str:
    return value.strftime("%a %d %b %Y") if value else "—"


@bp.app_template_filter("long_date")
def long_date(value: date | None) -> str:
    """A day with its weekday, e.g. "Tue 21 Dec 2027"."""
    return _day(value)


def _links(actor: Actor) -> dict[str, bool]:
    views = current_app.view_functions
    return {
        "editor": "editor_pages.edit" in views and may_download_definition(actor),
        "inspector": "instance_pages.instances" in views and may_inspect_instances(actor),
        "download": may_download_definition(actor),
        "governance": may_change_governance(actor),
        "start_review": may_start_review(actor),
    }


@bp.get("/definitions")
@login_required
def definitions() -> str:
    actor = _reader()
    with uow(write=False) as work:
        summaries = governance.process_summaries(work.session)
        under_way = review_engine.open_reviews(work.session)
    return render_template("definitions.html", summaries=summaries, under_way=under_way,
                           links=_links(actor), due_soon_days=governance.DUE_SOON_DAYS)


@bp.get("/reviews")
@login_required
def reviews() -> str:
    actor = _reader()
    with uow(write=False) as work:
        summaries = governance.process_summaries(work.session)
        under_way = review_engine.open_reviews(work.session)
    overdue = [s for s in summaries if s.review_state == governance.OVERDUE]
    due = [s for s in summaries if s.review_state == governance.DUE]
    return render_template("reviews.html", overdue=overdue, due=due, under_way=under_way,
                           links=_links(actor), due_soon_days=governance.DUE_SOON_DAYS,
                           today=governance.today())


def _versions(session, process_id: str) -> list[tuple[ProcessDefinition, int]]:
    running = dict(session.execute(
        select(ProcessInstance.definition_id, func.count())
        .where(ProcessInstance.process_id == process_id, ProcessInstance.status == "running")
        .group_by(ProcessInstance.definition_id)).all())
    rows = session.scalars(select(ProcessDefinition)
                           .where(ProcessDefinition.process_id == process_id)
                           .order_by(ProcessDefinition.version.desc())).all()
    return [(row, running.get(row.id, 0)) for row in rows]


def _process_owners(session) -> list[str]:
    return list(session.scalars(
        select(User.username).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "process_owner", User.active.is_(True))
        .order_by(User.username)))


def _definition_page(process_id: str, actor: Actor, status: int = 200,
                     errors: dict[str, list[str]] | None = None,
                     typed: dict[str, str] | None = None) -> tuple[str, int]:
    with uow(write=False) as work:
        session = work.session
        versions = _versions(session, process_id)
        if not versions:
            abort(404, f"There is no process {process_id}.")
        gov = governance.governance_of(session, process_id)
        html = render_template(
            "definition.html", process_id=process_id, current=versions[0][0],
            versions=versions, gov=gov,
            state=governance.review_state(gov.review_due_on if gov else None),
            records=review_engine.reviews_of(session, process_id),
            under_way=review_engine.open_review(session, process_id),
            owners=_process_owners(session), links=_links(actor), errors=errors or {},
            typed=typed or {}, min_interval=governance.MIN_INTERVAL_MONTHS,
            max_interval=governance.MAX_INTERVAL_MONTHS)
    return html, status


@bp.get("/definitions/<process_id>")
@login_required
def definition(process_id: str) -> tuple[str, int]:
    return _definition_page(process_id, _reader())


@bp.post("/definitions/<process_id>/governance")
@login_required
def change_governance(process_id: str):
    actor = _reader()
    typed = {"owner": request.form.get("owner", ""),
             "review_interval_months": request.form.get("review_interval_months", "")}
    try:
        with uow() as work:
            governance.set_governance(work.session, process_id, typed["owner"],
                                      typed["review_interval_months"], actor)
    except Forbidden as error:
        abort(403, str(error))
    except NotFound as error:
        abort(404, str(error))
    except InvalidData as error:
        return _definition_page(process_id, actor, 422, error.fields or {"_form": [str(error)]},
                                typed)
    flash("The owner and review interval were saved.")
    return redirect(url_for("definition_pages.definition", process_id=process_id), 303)


@bp.post("/definitions/<process_id>/reviews")
@login_required
def start_review(process_id: str) -> BaseResponse:
    actor = _reader()
    back = (url_for("definition_pages.reviews") if request.form.get("back") == "reviews"
            else url_for("definition_pages.definition", process_id=process_id))
    try:
        with uow() as work:
            review = review_engine.start_review(work, process_id, actor)
            review_id = review.id
    except Forbidden as error:
        abort(403, str(error))
    except NotFound as error:
        abort(404, str(error))
    except Conflict as error:
        flash(f"The review was not started: {error}.")
        return redirect(back, 303)
    flash(f"The review of {process_id} was started (review {review_id}): the process "
          "owner's task is in the inbox.")
    return redirect(back, 303)


# -- downloads -----------------------------------------------------------------------------

def _version_files(process_id: str, version: int) -> ProcessDefinition:
    actor = _reader()
    if not may_download_definition(actor):
        abort(403, "Only process owners and admins may download a definition's files.")
    with uow(write=False) as work:
        row = work.session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.process_id == process_id,
            ProcessDefinition.version == version)).first()
        if row is None:
            abort(404, f"There is no version {version} of {process_id}.")
        _ = row.sources  # deferred: load it before the session closes
        work.session.expunge(row)
    return row


@bp.get("/definitions/<process_id>/versions/<int:version>/files.zip")
@login_required
def download_version(process_id: str, version: int) -> Response:
    row = _version_files(process_id, version)
    stamp = row.deployed_at.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(row.sources):
            info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, row.sources[name])
    filename = f"{process_id}-v{version}.zip"
    return Response(buffer.getvalue(), mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/definitions/<process_id>/versions/<int:version>/files/<path:name>")
@login_required
def download_file(process_id: str, version: int, name: str) -> Response:
    row = _version_files(process_id, version)
    if name not in row.sources:
        abort(404, f"Version {version} of {process_id} has no file {name}.")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    filename = name.rsplit("/", 1)[-1]
    return Response(row.sources[name], mimetype=_MEDIA_TYPES.get(suffix, "text/plain"),
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- the review record ---------------------------------------------------------------------

def _record(process_id: str, review_id: int):
    _reader()
    with uow(write=False) as work:
        found = review_engine.review_by_id(work.session, process_id, review_id)
        if found is None:
            abort(404, f"There is no review {review_id} of {process_id}.")
        review, definition = found
        history = review_engine.review_history(work.session, review)
        status = review_engine.review_instance_status(work.session, review)
        work.session.expunge_all()
    return review, definition, history, status


@bp.get("/definitions/<process_id>/reviews/<int:review_id>")
@login_required
def review_record(process_id: str, review_id: int) -> str:
    review, definition, history, status = _record(process_id, review_id)
    return render_template("review_record.html", review=review, definition=definition,
                           history=history, status=status)


@bp.get("/definitions/<process_id>/reviews/<int:review_id>.txt")
@login_required
def review_record_text(process_id: str, review_id: int) -> Response:
    review, definition, history, status = _record(process_id, review_id)
    text = render_template("review_record.txt", review=review, definition=definition,
                           history=history, status=status)
    filename = f"review-{process_id}-{review_id}.txt"
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})
