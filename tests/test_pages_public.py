"""The public complaint form /complain: no account, CSRF, size and rate limits, honeypot."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.models import AuditEvent, Complaint
from engine.roles import ROLES
from web import create_app
from web.public import MAX_SUBMISSIONS

from .conftest import FIXTURES

EVERYONE = Actor("root", frozenset(ROLES))
DESCRIPTION = "The kettle I bought leaks from the base after two days of use."


@pytest.fixture
def app(db_url, manual_clock):
    app = create_app({"SECRET_KEY": "test-secret", "TESTING": True})
    with unit_of_work(get_engine(db_url)) as uow:
        result = deploy_directory(uow.session, FIXTURES / "register", EVERYONE)
    assert result.ok, [str(p) for p in result.problems]
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client) -> str:
    page = client.get("/complain").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def form(client, **changes):
    data = {
        "csrf_token": csrf_token(client),
        "name": "Pat Public",
        "email": "pat@example.org",
        "phone": "",
        "summary": "Leaking kettle",
        "description": DESCRIPTION,
        "product_or_service": "Kettle KX-2",
        "remedy_sought": "A replacement",
        "website_url": "",
    }
    data.update(changes)
    return data


def post(client, data, address="198.51.100.20", **kwargs):
    return client.post("/complain", data=data, environ_base={"REMOTE_ADDR": address}, **kwargs)


def complaints(db_url) -> list[Complaint]:
    with unit_of_work(get_engine(db_url), write=False) as uow:
        return list(uow.session.scalars(select(Complaint).order_by(Complaint.id)))


def test_the_form_needs_no_account_and_warns_about_sensitive_information(client):
    response = client.get("/complain")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Please do not send sensitive details" in page
    assert "bank or card details, passwords, or health information" in page
    assert "unencrypted e-mail" in page
    assert "we will contact you about how to share it with us securely" in page
    assert '<label for="f-email">Your e-mail address</label>' in page
    assert '<label for="f-remedy-sought">What would you like us to do?' in page
    # The honeypot: hidden from people and assistive technology, never auto-filled.
    assert re.search(r'<div class="visually-hidden" aria-hidden="true">\s*<label '
                     r'for="f-website-url">', page)
    assert re.search(r'name="website_url" type="text" value=""\s+autocomplete="off" '
                     r'tabindex="-1"', page)
    assert "<script" not in page


def test_a_complaint_is_recorded_from_the_website_and_the_reference_shown(client, db_url):
    response = post(client, form(client))
    assert response.status_code == 303
    assert response.headers["Location"] == "/complain/done"

    (row,) = complaints(db_url)
    assert row.channel == "website"
    assert row.received_at.isoformat() == "2026-12-21T14:30:00+00:00"
    assert (row.complainant_name, row.complainant_email) == ("Pat Public", "pat@example.org")
    assert row.complainant_phone is None
    assert (row.summary, row.description) == ("Leaking kettle", DESCRIPTION)
    assert (row.product_or_service, row.remedy_sought) == ("Kettle KX-2", "A replacement")
    assert row.deadlines["acknowledge_by"]

    done = client.get("/complain/done")
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "Your reference is <strong>CMP-2026-000001</strong>" in page
    assert "within 3 working days" in page
    assert "If you are not happy" in page
    assert DESCRIPTION not in page

    with unit_of_work(get_engine(db_url), write=False) as uow:
        actors = set(uow.session.scalars(select(AuditEvent.actor)))
        addresses = set(uow.session.scalars(select(AuditEvent.address)))
    assert "public-web-form" in actors
    assert "198.51.100.20" in addresses


def test_the_done_page_without_a_complaint_goes_back_to_the_form(client):
    response = client.get("/complain/done")
    assert response.status_code == 302
    assert response.headers["Location"] == "/complain"


def test_mistakes_are_shown_at_the_fields_and_typed_values_kept(client, db_url):
    response = post(client, form(client, name="", email="", summary="x" * 201))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert '<p class="error" id="f-name-error">This is required.</p>' in page
    assert "so that we can send you our acknowledgement" in page
    assert 'id="f-summary-error">At most 200 characters.' in page
    assert f"{DESCRIPTION}</textarea>" in page
    assert 'value="Kettle KX-2"' in page
    assert complaints(db_url) == []

    bad_email = post(client, form(client, email="pat at example"))
    assert bad_email.status_code == 422
    assert "Enter a valid e-mail address" in bad_email.get_data(as_text=True)
    assert complaints(db_url) == []


def test_a_post_without_the_csrf_token_is_refused(client, db_url):
    client.get("/complain")
    data = form(client)
    del data["csrf_token"]
    response = post(client, data)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert post(client, {**data, "csrf_token": "forged"}).status_code == 400
    assert complaints(db_url) == []


def test_a_filled_honeypot_looks_like_success_but_records_nothing(client, db_url):
    response = post(client, form(client, website_url="http://spam.example"))
    assert response.status_code == 303
    assert response.headers["Location"] == "/complain/done"
    page = client.get("/complain/done").get_data(as_text=True)
    assert re.search(r"Your reference is <strong>CMP-2026-\d{6}</strong>", page)
    assert "within 3 working days" in page
    assert complaints(db_url) == []


def test_too_many_complaints_from_one_address_are_refused(client, db_url, manual_clock):
    for _ in range(MAX_SUBMISSIONS):
        assert post(client, form(client)).status_code == 303
    refused = post(client, form(client))
    assert refused.status_code == 429
    assert "try again later" in refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == "3600"
    assert len(complaints(db_url)) == MAX_SUBMISSIONS

    # Another address is not affected; the first may send again an hour later.
    assert post(client, form(client), address="198.51.100.99").status_code == 303
    manual_clock.advance(hours=1)
    assert post(client, form(client)).status_code == 303
    assert len(complaints(db_url)) == MAX_SUBMISSIONS + 2


def test_an_oversized_submission_is_refused_kindly(client, db_url):
    response = post(client, form(client, description="x" * 25_000))
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "Your message is too long for this form" in page
    assert complaints(db_url) == []
