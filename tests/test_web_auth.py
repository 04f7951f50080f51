"""Signing in and out: sessions, CSRF, lock-out, audit, cookies, the home page."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.db import get_engine, unit_of_work
from engine.models import AuditEvent, HumanTask, ProcessDefinition, ProcessInstance
from engine.users import create_user
from web import create_app, development_secret_key

from .support import csrf_token

PASSWORD = "correct horse battery"
ADDRESS = "203.0.113.7"


@pytest.fixture
def app(db_url):
    app = create_app({"SECRET_KEY": "test-secret", "TESTING": True})
    with unit_of_work(get_engine(db_url)) as uow:
        create_user(uow.session, "sam", PASSWORD, ["staff"])
        create_user(uow.session, "quinn", PASSWORD, ["staff", "quality_manager"])
    return app


@pytest.fixture
def client(app):
    return app.test_client()



def sign_in(client, username, password=PASSWORD, **extra):
    form = {"username": username, "password": password, "csrf_token": csrf_token(client)}
    form.update(extra)
    return client.post("/login", data=form, environ_base={"REMOTE_ADDR": ADDRESS})


def audit(db_url, action):
    with unit_of_work(get_engine(db_url), write=False) as uow:
        return uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()


def test_signing_in_with_the_right_password_opens_the_home_page(client, db_url):
    response = sign_in(client, "quinn")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"

    home = client.get("/")
    assert home.status_code == 200
    page = home.get_data(as_text=True)
    assert "quinn" in page
    assert "quality_manager, staff" in page
    assert "No tasks are waiting for you." in page

    (event,) = audit(db_url, "signed_in")
    assert (event.actor, event.address) == ("quinn", ADDRESS)


@pytest.mark.parametrize("username", ["sam", "nobody"])
def test_a_wrong_password_or_unknown_user_is_refused_alike(client, db_url, username):
    response = sign_in(client, username, "wrong password!")
    assert response.status_code == 401
    assert "The username or password is not right." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302

    (event,) = audit(db_url, "sign_in_failed")
    assert event.address == ADDRESS
    assert event.details == {"username": username, "reason": "bad_credentials"}


def test_the_home_page_sends_strangers_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(client):
    assert sign_in(client, "sam", next="/?page=2").headers["Location"] == "/?page=2"
    other = create_app({"SECRET_KEY": "test-secret"}).test_client()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        with other.session_transaction() as session:
            session.clear()
        assert sign_in(other, "sam", next=target).headers["Location"] == "/"


def test_a_sign_in_without_the_csrf_token_is_refused(client, db_url):
    client.get("/login")
    response = client.post("/login", data={"username": "sam", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token is missing or out of date" in response.get_data(as_text=True)

    wrong = client.post("/login", data={"username": "sam", "password": PASSWORD,
                                        "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert client.get("/").status_code == 302
    assert audit(db_url, "signed_in") == []


def test_five_failures_block_the_username_for_fifteen_minutes(app, client, db_url,
                                                             manual_clock):
    for _ in range(4):
        assert sign_in(client, "sam", "wrong password!").status_code == 401
        manual_clock.advance(minutes=1)
    fifth = sign_in(client, "sam", "wrong password!")
    assert fifth.status_code == 401
    assert "blocked for 15 more minutes" in fifth.get_data(as_text=True)

    refused = sign_in(client, "sam")  # even the right password
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    other_user = app.test_client()
    assert sign_in(other_user, "quinn").status_code == 302  # other users are not affected

    manual_clock.advance(minutes=14)
    assert sign_in(client, "sam").status_code == 429
    manual_clock.advance(minutes=1)
    assert sign_in(client, "sam").status_code == 302

    reasons = [e.details["reason"] for e in audit(db_url, "sign_in_failed")]
    assert reasons == ["bad_credentials"] * 5 + ["locked_out"] * 2


def test_failures_older_than_fifteen_minutes_do_not_count(client, manual_clock):
    for _ in range(4):
        assert sign_in(client, "sam", "wrong password!").status_code == 401
        manual_clock.advance(seconds=30)  # past the slow-down delays
    manual_clock.advance(minutes=15)
    assert sign_in(client, "sam", "wrong password!").status_code == 401
    assert sign_in(client, "sam").status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(client, manual_clock):
    for _ in range(4):
        assert sign_in(client, "sam", "wrong password!").status_code == 401
        manual_clock.advance(seconds=30)  # past the slow-down delays
    assert sign_in(client, "sam").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(4):
        assert sign_in(client, "sam", "wrong password!").status_code == 401
        manual_clock.advance(seconds=30)
    assert sign_in(client, "sam").status_code == 302


def test_signing_out_needs_the_csrf_token_and_ends_the_session(client, db_url):
    sign_in(client, "sam")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "You have signed out." in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302
    (event,) = audit(db_url, "signed_out")
    assert event.actor == "sam"


def test_logout_by_get_is_not_allowed(client):
    sign_in(client, "sam")
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_session_cookie_is_http_only_and_same_site_lax(client):
    cookie = sign_in(client, "sam").headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_behind_tls(db_url, monkeypatch):
    monkeypatch.setenv("COMPLAINTS_SECURE_COOKIES", "1")
    app = create_app({"SECRET_KEY": "test-secret"})
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" in cookie


def test_the_development_secret_key_is_generated_once_and_private(tmp_path):
    var = tmp_path / "var"
    key = development_secret_key(var)
    assert len(key) == 64
    assert stat.S_IMODE((var / "secret_key").stat().st_mode) == 0o600
    assert development_secret_key(var) == key
    assert list(var.iterdir()) == [var / "secret_key"]


def test_the_secret_key_comes_from_the_environment(db_url, monkeypatch):
    monkeypatch.setenv("COMPLAINTS_SECRET_KEY", "from-the-environment")
    assert create_app().config["SECRET_KEY"] == "from-the-environment"


def test_the_home_page_lists_my_tasks_with_due_times_in_london(client, db_url):
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    with unit_of_work(get_engine(db_url)) as uow:
        definition = ProcessDefinition(
            process_id="p", version=1, name="P", sha256="0" * 64, sources={}, specs_json="{}",
            user_tasks=[], deployed_at=now)
        instance = ProcessInstance(definition=definition, process_id="p", status="running",
                                   state="", created_at=now, updated_at=now)
        uow.session.add(instance)
        uow.session.flush()
        tasks = (("<b>Log</b> the complaint", "staff"), ("QM review", "quality_manager"))
        for title, role in tasks:
            uow.session.add(HumanTask(
                id=str(uuid.uuid4()), instance_id=instance.id, bpmn_id="t", title=title,
                role=role, state="ready", created_at=now, due_at=now + timedelta(days=1)))
    sign_in(client, "sam")
    page = client.get("/").get_data(as_text=True)
    assert "&lt;b&gt;Log&lt;/b&gt; the complaint" in page
    assert "Thu 02 Jul 2026, 13:00" in page  # British Summer Time
    assert "QM review" not in page
    assert 'name="csrf_token"' in page and 'action="/logout"' in page


def _change(client, current, new, confirm=None):
    form = {"current_password": current, "new_password": new,
            "confirm_password": new if confirm is None else confirm,
            "csrf_token": csrf_token(client, "/password")}
    return client.post("/password", data=form)


def test_changing_my_password_needs_the_current_one_and_is_audited(client, db_url):
    sign_in(client, "sam")
    wrong = _change(client, "not my password", "a new long password")
    assert wrong.status_code == 422
    assert "this is not your current password" in wrong.get_data(as_text=True)
    assert _change(client, PASSWORD, "a new long password", "different").status_code == 422
    assert _change(client, PASSWORD, "short").status_code == 422
    assert _change(client, PASSWORD, "a new long password").status_code == 302
    assert [e.details["username"] for e in audit(db_url, "password_changed")] == ["sam"]
    other = create_app({"SECRET_KEY": "test-secret", "TESTING": True}).test_client()
    assert sign_in(other, "sam").status_code == 401
    assert sign_in(other, "sam", "a new long password").status_code == 302


def test_changing_a_password_needs_the_csrf_token(client):
    sign_in(client, "sam")
    response = client.post("/password", data={
        "current_password": PASSWORD, "new_password": "a new long password",
        "confirm_password": "a new long password"})
    assert response.status_code == 400


def test_repeated_failures_slow_sign_in_down_before_blocking_it(client, manual_clock):
    assert sign_in(client, "sam", "wrong password!").status_code == 401
    assert sign_in(client, "sam", "wrong password!").status_code == 401
    too_soon = sign_in(client, "sam")  # even the right password must wait
    assert too_soon.status_code == 429
    assert "wait 5 seconds" in too_soon.get_data(as_text=True)
    manual_clock.advance(seconds=5)
    assert sign_in(client, "sam", "wrong password!").status_code == 401
    assert "wait 10 seconds" in sign_in(client, "sam").get_data(as_text=True)
    manual_clock.advance(seconds=10)
    assert sign_in(client, "sam").status_code == 302
