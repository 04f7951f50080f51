"""CSRF protection for browser requests.

Each session holds one random token. Every POST, PUT, PATCH and DELETE must send it
back, in the hidden form field ``csrf_token`` or the ``X-CSRF-Token`` header (for
scripts on our own pages), unless the app's ``exempt`` rule says the request carries
no ambient credentials (a bearer token instead of the session cookie).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from flask import Flask, request, session
from werkzeug.exceptions import BadRequest

SESSION_KEY = "_csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfFailed(BadRequest):
    code = 400
    description = (
        "This form could not be accepted because its security token is missing or out "
        "of date (for example after signing out in another tab). Reload the page and "
        "try again."
    )


def token() -> str:
    """This session's token, created on first use (put it in every form)."""
    value = session.get(SESSION_KEY)
    if not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def verify() -> None:
    expected = session.get(SESSION_KEY)
    given = request.form.get(FORM_FIELD) or request.headers.get(HEADER)
    if not expected or not given:
        raise CsrfFailed()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed()


def init_app(app: Flask, exempt: Callable[[], bool]) -> None:
    app.jinja_env.globals["csrf_token"] = token

    @app.before_request
    def _check_csrf() -> None:
        if request.method in UNSAFE_METHODS and not exempt():
            verify()
