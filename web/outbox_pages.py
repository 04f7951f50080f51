"""Admins: the mail outbox (queued, sent and failed mail) and resending failed mail.

Server-rendered, no JavaScript. Resending is a CSRF-protected POST, one transaction,
audited by the engine (``mail_resend``). The recipient and text of mail about a
need-to-know complaint are withheld from an admin who may not see its personal data.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from engine import outbox as mail_outbox
from engine import settings
from engine.errors import Conflict, Forbidden, NotFound
from web.auth import current_actor
from web.db import uow

bp = Blueprint("outbox_pages", __name__)

WITHHELD = "(withheld: need-to-know case)"


def _require_admin() -> None:
    if not mail_outbox.may_manage_outbox(current_actor()):
        abort(403, "The outbox is shown to administrators.")


@bp.get("/admin/outbox")
@login_required
def outbox():  # the endpoint the navigation names (base.html)
    _require_admin()
    state = request.args.get("state", "").strip()
    if state and state not in mail_outbox.STATES:
        abort(400, f"Show one of: {', '.join(mail_outbox.STATES)}.")
    try:
        page = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        abort(400, "The page is a number.")
    with uow(write=False) as work:
        entries, total = mail_outbox.list_messages(work.session, current_actor(),
                                                   state or None, page)
        counts = mail_outbox.counts(work.connection)
    pages = max((total + mail_outbox.PAGE_SIZE - 1) // mail_outbox.PAGE_SIZE, 1)
    return render_template(
        "outbox.html", entries=entries, counts=counts, state=state, total=total, page=page,
        pages=pages, states=mail_outbox.STATES, withheld=WITHHELD,
        smtp_configured=bool(settings.load().smtp_url), max_attempts=mail_outbox.MAX_ATTEMPTS)


@bp.post("/admin/outbox/<int:message_id>/resend")
@login_required
def resend(message_id: int) -> BaseResponse:
    _require_admin()
    try:
        with uow() as work:
            message = mail_outbox.resend(work, message_id, current_actor())
            flash(f"Message {message.id} is queued again and will be sent with its "
                  "Message-ID unchanged.")
    except NotFound as error:
        abort(404, str(error))
    except Forbidden as error:
        abort(403, str(error))
    except Conflict as error:
        flash(f"Not resent: {error}")
    return redirect(url_for("outbox_pages.outbox", state=request.form.get("state") or None))
