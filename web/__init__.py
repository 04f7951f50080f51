"""The Flask application: staff pages, the JSON API and sign-in."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, render_template, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from engine import settings

SECRET_KEY_FILE = "secret_key"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides settings (tests pass ``SECRET_KEY``,
    ``DATABASE_URL``)."""
    from web import (
        api,
        auth,
        calendar_pages,
        csrf,
        definition_pages,
        editor_pages,
        inbox,
        instance_pages,
        intake,
        mail_template_pages,
        outbox_pages,
        owner_pages,
        pages,
        public,
        register_pages,
        report_pages,
        task_pages,
    )

    env = settings.load()
    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_NAME="complaints_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("COMPLAINTS_SECURE_COOKIES") == "1",
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        DATABASE_URL=None,
        TIMEZONE=env.timezone,
    )
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = env.secret_key or development_secret_key(settings.VAR_DIR)

    auth.init_app(app)
    csrf.init_app(app, exempt=_csrf_exempt)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    for area in (inbox, task_pages, intake, public, register_pages, outbox_pages,
                 calendar_pages, definition_pages, editor_pages, instance_pages,
                 mail_template_pages, report_pages, owner_pages):
        app.register_blueprint(area.bp)
    from web import document_pages  # evidence downloads (linked from the case page)

    app.register_blueprint(document_pages.bp)

    zone = ZoneInfo(app.config["TIMEZONE"])
    app.jinja_env.filters["local_time"] = lambda dt: _local_time(dt, zone)
    app.jinja_env.globals["timezone_name"] = app.config["TIMEZONE"]

    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_security_headers)
    return app


def development_secret_key(var_dir: Path) -> str:
    """The key in ``var/secret_key``, generated (mode 0600) the first time.

    Written to a temporary file and hard-linked into place, so that several workers
    starting together agree on one key and never read a half-written file.
    """
    path = var_dir / SECRET_KEY_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = var_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race: use its key
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _csrf_exempt() -> bool:
    """No CSRF check where no cookie can authenticate the request.

    With a bearer token the session is ignored (see auth), and an API request without
    any credentials gets 401 from the API itself.
    """
    from web.api import is_api_request
    from web.auth import bearer_token

    if bearer_token() is not None:
        return True
    return is_api_request() and not current_user.is_authenticated


def _local_time(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%a %d %b %Y, %H:%M")


def _http_error(error: HTTPException):
    from web.api import error_response, is_api_request

    status = error.code or 500
    if is_api_request():
        response, status = error_response(status, _HTTP_CODES.get(status, "error"),
                                          error.description or error.name)
        for name, value in error.get_headers():
            if name.lower() in ("allow", "retry-after"):
                response.headers[name] = value
        return response, status
    return render_template("error.html", error=error), status


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy",
                           "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
    if request.path != "/static" and not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
    return response
