"""Pages: the public complaint form, ``GET/POST /complain`` (issue 4), for people without
an account.

A complaint sent here is recorded with channel ``website`` and received now, by the
system actor ``public-web-form`` (it holds the staff role only so that the engine's
``may_record_complaint`` lets it record; it signs no one in and sees nothing).

Protections, because anyone on the internet can post here:

* CSRF: the session's token (an anonymous session) in the hidden ``csrf_token`` field,
  checked for every POST by web.csrf before this view runs;
* size: a body over :data:`MAX_BODY` bytes is refused with 413 and a friendly page;
* rate: each client address (``request.remote_addr``; put the app behind a proxy fix
  if a reverse proxy sits in front) may send :data:`MAX_SUBMISSIONS` complaints and
  :data:`MAX_ATTEMPTS` posts in all (with mistakes) per :data:`WINDOW`; beyond that 429.
  The counts are in memory, per process (as web.throttle's): N workers allow N times
  as many, and a restart forgets them;
* a honeypot: the visually hidden text input :data:`HONEYPOT` that people do not see.
  When it is filled the sender is told the complaint was received (with a made-up
  reference) but nothing is recorded; the response is the same as a real success.

After a complaint is recorded the browser is sent on to ``/complain/done``
(Post/Redirect/Get: reloading does not send it again), which shows the reference and
what happens next, never the complaint's text.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from engine import clock
from engine.audit import Actor
from engine.errors import InvalidData
from engine.register import SUMMARY_MAX, record_complaint, reference_year, validate_intake
from web.db import uow
from web.intake import friendly_errors, text_value

bp = Blueprint("public", __name__)

PUBLIC_ACTOR_NAME = "public-web-form"
MAX_BODY = 20 * 1024
MAX_SUBMISSIONS = 5
MAX_ATTEMPTS = 30
WINDOW = timedelta(hours=1)
HONEYPOT = "website_url"
_DONE_KEY = "public_complaint_done"
_EXTENSION = "public_form_limiter"
_PRUNE_ABOVE = 10_000

PUBLIC_FIELDS = ("summary", "description", "product_or_service", "remedy_sought")
EMAIL_REQUIRED = "Enter your e-mail address, so that we can send you our acknowledgement."
TOO_MANY = ("You have sent several complaints from this connection in the last hour, so we "
            "cannot accept another one just now. Please try again later, or contact us by "
            "telephone or letter instead.")
TOO_LARGE = ("Your message is too long for this form. Please shorten the details (a "
             "summary is enough: we will contact you for more) and send it again, or write "
             "to us by letter.")
_FRIENDLY_NAMES = {
    "complainant.name": "name",
    "complainant.email": "email",
    "complainant.phone": "phone",
}


class SubmissionLimiter:
    """How many posts each client address made recently, in memory (thread safe)."""

    def __init__(self, max_submissions: int = MAX_SUBMISSIONS, max_attempts: int = MAX_ATTEMPTS,
                 window: timedelta = WINDOW, now: Callable[[], datetime] = clock.now):
        self.max_submissions = max_submissions
        self.max_attempts = max_attempts
        self.window = window
        self._now = now
        self._submissions: dict[str, list[datetime]] = {}
        self._attempts: dict[str, list[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, table: dict[str, list[datetime]], address: str,
                now: datetime) -> list[datetime]:
        recent = [t for t in table.get(address, []) if now - t < self.window]
        if recent:
            table[address] = recent
        else:
            table.pop(address, None)
        return recent

    def attempt(self, address: str) -> bool:
        """Count a post from ``address``; False if it is over either limit."""
        now = self._now()
        with self._lock:
            if len(self._recent(self._submissions, address, now)) >= self.max_submissions:
                return False
            attempts = self._recent(self._attempts, address, now)
            if len(attempts) >= self.max_attempts:
                return False
            self._attempts[address] = [*attempts, now]
            if len(self._attempts) > _PRUNE_ABOVE:
                self._prune(now)
            return True

    def submitted(self, address: str) -> None:
        """Count a complaint accepted from ``address`` (or pretended to be, for a bot)."""
        now = self._now()
        with self._lock:
            self._submissions[address] = [*self._recent(self._submissions, address, now), now]

    def _prune(self, now: datetime) -> None:
        for table in (self._attempts, self._submissions):
            for address in [a for a, ts in table.items() if now - ts[-1] >= self.window]:
                del table[address]


def limiter() -> SubmissionLimiter:
    return current_app.extensions.setdefault(_EXTENSION, SubmissionLimiter())


def _page(values: Any, errors: dict[str, list[str]], status: int = 200,
          problem: str | None = None):
    return render_template("complain.html", values=values, errors=errors, problem=problem,
                           summary_max=SUMMARY_MAX, honeypot=HONEYPOT), status


def _body_too_large() -> bool:
    length = request.content_length
    if length is not None:
        return length > MAX_BODY
    size = sum(len(k) + len(v) for k, v in request.form.items(multi=True))
    return size > MAX_BODY


@bp.get("/complain")
def complain():
    return _page({}, {})


@bp.post("/complain")
def submit():
    if _body_too_large():
        return _page({}, {}, 413, TOO_LARGE)
    address = request.remote_addr or "unknown"
    if not limiter().attempt(address):
        page, status = _page(request.form, {}, 429, TOO_MANY)
        return page, status, {"Retry-After": str(int(WINDOW.total_seconds()))}

    form = request.form
    if form.get(HONEYPOT, "").strip():
        limiter().submitted(address)
        year = reference_year(clock.now())
        return _done(f"CMP-{year:04d}-{secrets.randbelow(900_000) + 100_000:06d}")

    data: dict[str, Any] = {
        "channel": "website",
        "complainant": {
            "name": text_value(form, "name"),
            "email": text_value(form, "email"),
            "phone": text_value(form, "phone"),
        },
    }
    for name in PUBLIC_FIELDS:
        data[name] = text_value(form, name)

    errors: dict[str, list[str]] = {}
    try:
        validate_intake(data)
    except InvalidData as error:
        errors = _public_errors(error.fields)
    if data["complainant"]["email"] is None:
        errors.setdefault("email", [EMAIL_REQUIRED])
    if errors:
        return _page(form, errors, 422)

    actor = Actor(PUBLIC_ACTOR_NAME, frozenset({"staff"}), request.remote_addr)
    try:
        with uow() as work:
            reference = record_complaint(work, data, actor).reference
    except InvalidData as error:  # pragma: no cover - validated above
        return _page(form, _public_errors(error.fields), 422)
    limiter().submitted(address)
    return _done(reference)


def _public_errors(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    return {_FRIENDLY_NAMES.get(name, name): messages
            for name, messages in friendly_errors(fields).items()}


def _done(reference: str):
    session[_DONE_KEY] = reference
    return redirect(url_for("public.done"), code=303)


@bp.get("/complain/done")
def done():
    reference = session.get(_DONE_KEY)
    if not reference:
        return redirect(url_for("public.complain"))
    return render_template("complain_done.html", reference=reference)
