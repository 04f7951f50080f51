"""Staff intake page: recording a complaint received by telephone, letter, in person, e-mail."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.models import Complaint
from engine.roles import ROLES
from engine.users import create_user
from web import create_app
from web.intake import local_text

from .conftest import FIXTURES
from .support import csrf_token, sign_in

PASSWORD = "correct horse battery"
EVERYONE = Actor("root", frozenset(ROLES))


@pytest.fixture
def app(db_url, manual_clock):
    app = create_app({"SECRET_KEY": "test-secret", "TESTING": True})
    with unit_of_work(get_engine(db_url)) as uow:
        create_user(uow.session, "sam", PASSWORD, ["staff"])
        create_user(uow.session, "aud", PASSWORD, ["auditor"])
        result = deploy_directory(uow.session, FIXTURES / "register", EVERYONE)
    assert result.ok, [str(p) for p in result.problems]
    return app



def signed_in(app, username="sam"):
    return sign_in(app.test_client(), username)


def complaints(db_url) -> list[Complaint]:
    with unit_of_work(get_engine(db_url), write=False) as uow:
        return list(uow.session.scalars(select(Complaint).order_by(Complaint.id)))


def form(client, **changes):
    data = {
        "csrf_token": csrf_token(client, "/complaints/new"),
        "channel": "telephone",
        "received_at": "2026-12-20T10:15",
        "complainant.name": "Ann Example",
        "complainant.email": "ann@example.org",
        "complainant.phone": "01632 960000",
        "complainant.postal_address": "1 High Street\nTown",
        "summary": "Engineer did not arrive",
        "description": "Waited in all day on Saturday; nobody came or called.",
        "product_or_service": "Boiler service",
        "remedy_sought": "A new appointment and a refund of the call-out fee",
    }
    data.update(changes)
    return data


def test_the_form_has_labelled_fields_and_defaults_to_now(app):
    page = signed_in(app).get("/complaints/new").get_data(as_text=True)
    assert '<label for="f-complainant-name">' in page
    assert 'id="f-complainant-name" name="complainant.name"' in page
    assert 'type="datetime-local"' in page
    assert 'value="2026-12-21T14:30"' in page  # now, on the London clock
    for channel in ("telephone", "letter", "in_person", "email"):
        assert f'<option value="{channel}"' in page
    assert '<option value="website"' not in page
    assert 'name="personal_data_involved"' in page
    assert "Information Security Officer" in page  # the help text of the checkbox


def test_staff_record_a_telephone_complaint_received_yesterday(app, db_url):
    client = signed_in(app)
    response = client.post("/complaints/new", data=form(client, personal_data_involved="yes"))
    assert response.status_code == 302
    assert response.headers["Location"] == "/complaints/new"

    (row,) = complaints(db_url)
    assert row.reference == "CMP-2026-000001"
    assert row.channel == "telephone"
    assert row.received_at.isoformat() == "2026-12-20T10:15:00+00:00"
    assert row.complainant_name == "Ann Example"
    assert row.complainant_postal_address == "1 High Street\nTown"
    assert row.personal_data_involved is True
    deadlines = row.deadlines
    assert set(deadlines) >= {"log_by", "acknowledge_by"}

    page = client.get("/complaints/new").get_data(as_text=True)
    assert "Complaint CMP-2026-000001 recorded" in page
    assert "Received Sun 20 Dec 2026, 10:15" in page
    # The deadlines count from the time received (a Sunday), not from now.
    assert deadlines["log_by"] < "2026-12-22T14:30"
    with app.app_context():
        assert f"<dt>Log by</dt><dd>{local_text(deadlines['log_by'])}</dd>" in page
        assert (f"<dt>Acknowledge by</dt><dd>{local_text(deadlines['acknowledge_by'])}</dd>"
                in page)
    # Shown once only.
    assert "recorded</h2>" not in client.get("/complaints/new").get_data(as_text=True)


def test_the_deadlines_follow_the_time_received(app, db_url):
    client = signed_in(app)
    client.post("/complaints/new", data=form(client, received_at="2026-12-21T09:00"))
    client.post("/complaints/new", data=form(client, received_at="2026-12-17T09:00",
                                             channel="letter"))
    today, earlier = complaints(db_url)
    assert earlier.channel == "letter"
    assert earlier.deadlines["log_by"] < today.deadlines["log_by"]
    assert earlier.deadlines["acknowledge_by"] < today.deadlines["acknowledge_by"]


def test_a_future_time_received_is_refused_with_a_clear_message(app, db_url):
    client = signed_in(app)
    response = client.post("/complaints/new", data=form(client, received_at="2026-12-21T15:00"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "cannot be in the future" in page
    assert 'id="f-received-at-error"' in page
    assert 'value="2026-12-21T15:00"' in page
    assert complaints(db_url) == []


def test_a_missing_name_is_refused_at_the_field_and_typed_values_are_kept(app, db_url):
    client = signed_in(app)
    response = client.post("/complaints/new", data=form(client, **{"complainant.name": "  "},
                                                        channel="letter"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(r'<div class="field field-has-error">\s*<label for="f-complainant-name">',
                     page)
    assert '<p class="error" id="f-complainant-name-error">This is required.</p>' in page
    assert 'aria-invalid="true"' in page
    assert 'value="ann@example.org"' in page
    assert "Waited in all day on Saturday; nobody came or called.</textarea>" in page
    assert '<option value="letter" selected>' in page
    assert 'value="2026-12-20T10:15"' in page
    assert complaints(db_url) == []


def test_every_problem_is_shown_at_once(app, db_url):
    client = signed_in(app)
    response = client.post("/complaints/new", data=form(
        client, received_at="tomorrow", summary="x" * 201, description="",
        **{"complainant.email": "not an address"}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for name in ("received-at", "summary", "description", "complainant-email"):
        assert f'id="f-{name}-error"' in page
    assert "At most 200 characters." in page
    assert complaints(db_url) == []


def test_people_without_the_staff_role_may_not_record(app, db_url):
    client = signed_in(app, "aud")
    assert client.get("/complaints/new").status_code == 403
    with client.session_transaction() as session:
        token = session["_csrf_token"]
    data = {k: v for k, v in form(signed_in(app)).items() if k != "csrf_token"}
    response = client.post("/complaints/new", data={**data, "csrf_token": token})
    assert response.status_code == 403
    assert complaints(db_url) == []


def test_strangers_are_sent_to_sign_in(app):
    response = app.test_client().get("/complaints/new")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
