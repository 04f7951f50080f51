"""Who is calling: flask-login (browser session) and API bearer tokens; the sign-in pages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from werkzeug.wrappers import Response

from engine import clock
from engine.audit import Actor, record
from engine.errors import InvalidData
from engine.models import User
from engine.users import actor_for, authenticate, change_password, user_for_token
from web.db import uow
from web.throttle import LoginThrottle

bp = Blueprint("auth", __name__)

ANONYMOUS = "anonymous"
MAX_USERNAME = 80
MAX_PASSWORD = 1024


@dataclass(frozen=True, eq=True)
class SignedInUser(UserMixin):
    """The caller of one request: a plain copy of the user row, detached from any session."""

    id: int
    username: str
    email: str | None
    role_names: frozenset[str]

    @classmethod
    def of(cls, user: User) -> SignedInUser:
        return cls(user.id, user.username, user.email, user.role_names)

    def get_id(self) -> str:
        return str(self.id)


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None without one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def current_actor() -> Actor:
    """The engine's view of the caller, with the address the request came from."""
    return actor_for(current_user, request.remote_addr)  # type: ignore[arg-type]


def init_app(app: Flask) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = "Please sign in to see this page."
    app.extensions["login_throttle"] = LoginThrottle()

    @manager.user_loader
    def _load_from_session(user_id: str) -> SignedInUser | None:
        if bearer_token() is not None:
            return None  # a bearer token, when sent, is the only credential looked at
        try:
            pk = int(user_id)
        except ValueError:
            return None
        with uow(write=False) as work:
            user = work.session.get(User, pk)
            return SignedInUser.of(user) if user is not None and user.active else None

    @manager.request_loader
    def _load_from_token(_request) -> SignedInUser | None:
        token = bearer_token()
        if not token:
            return None
        with uow(write=False) as work:
            user = user_for_token(work.session, token)
            return SignedInUser.of(user) if user is not None else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL (open redirect)."""
    if not target or "\\" in target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


def _login_page(status: int = 200, error: str | None = None, username: str = ""):
    return render_template("login.html", error=error, username=username,
                           next=request.values.get("next", "")), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))
        return _login_page()

    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return _login_page(400, "Enter your username and your password.", username)
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        return _login_page(400, "The username or password is too long.", username[:MAX_USERNAME])

    throttle: LoginThrottle = current_app.extensions["login_throttle"]
    anonymous = Actor(ANONYMOUS, frozenset(), request.remote_addr)
    locked_until = throttle.locked_until(username)
    if locked_until is not None:
        with uow() as work:
            record(work.session, anonymous, "sign_in_failed",
                   details={"username": username, "reason": "locked_out"})
        return _login_page(429, _locked_message(locked_until), username)
    wait_until = throttle.wait_until(username)
    if wait_until is not None:
        seconds = max(1, math.ceil((wait_until - clock.now()).total_seconds()))
        with uow() as work:
            record(work.session, anonymous, "sign_in_failed",
                   details={"username": username, "reason": "slowed_down"})
        return _login_page(429, f"Too many failed sign-ins for this username: wait {seconds} "
                                f"second{'s' if seconds != 1 else ''} before trying again.",
                           username)

    with uow() as work:
        user = authenticate(work.session, username, password)
        if user is None:
            record(work.session, anonymous, "sign_in_failed",
                   details={"username": username, "reason": "bad_credentials"})
        else:
            record(work.session, actor_for(user, request.remote_addr), "signed_in")
            signed_in = SignedInUser.of(user)
    if user is None:
        locked_until = throttle.failed(username)
        message = "The username or password is not right."
        if locked_until is not None:
            message += " " + _locked_message(locked_until)
        return _login_page(401, message, username)

    throttle.succeeded(username)
    target = _safe_next(request.form.get("next"))
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    login_user(signed_in)
    return redirect(target)


def _locked_message(until) -> str:
    minutes = max(1, math.ceil((until - clock.now()).total_seconds() / 60))
    return (f"Too many failed sign-ins for this username: signing in is blocked for "
            f"{minutes} more minute{'s' if minutes != 1 else ''}. Try again later, or ask "
            f"an administrator to reset your password.")


@bp.post("/logout")
@login_required
def logout() -> Response:
    with uow() as work:
        record(work.session, current_actor(), "signed_out")
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    """Change my password: the current one, then the new one twice."""
    if request.method == "GET":
        return render_template("password.html", errors={})
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    errors: dict[str, list[str]] = {}
    if new != request.form.get("confirm_password", ""):
        errors["confirm_password"] = ["the two new passwords are not the same"]
    if len(current) > MAX_PASSWORD or len(new) > MAX_PASSWORD:
        errors["new_password"] = ["this password is too long"]
    if not errors:
        try:
            with uow() as work:
                change_password(work.session, current_user.username, current, new,
                                current_actor())
        except InvalidData as exc:
            errors = exc.fields
    if errors:
        return render_template("password.html", errors=errors), 422
    flash("Your password has been changed.")
    return redirect(url_for("pages.home"))
