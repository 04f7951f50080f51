"""The case page's "Change the Complaint Owner" form (web/owner_pages.py), on SQLite and
(when configured) PostgreSQL, with the complaint of tests/test_owner_change.py."""

from __future__ import annotations

import re

from web import create_app

from .test_owner_change import case, classified  # noqa: F401 - the fixtures
from .test_pages_inbox import csrf_token, sign_in

FORM = "Change the Complaint Owner"


def signed_in(username):
    return sign_in(create_app({"SECRET_KEY": "test", "TESTING": True}).test_client(), username)


def case_page(client, reference, expect=200) -> str:
    response = client.get(f"/complaints/{reference}")
    assert response.status_code == expect, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def post(client, reference, owner="olga", reason="owen is on leave for a month", token=None):
    token = token if token is not None else csrf_token(client, f"/complaints/{reference}")
    return client.post(f"/complaints/{reference}/owner",
                       data={"owner": owner, "reason": reason, "csrf_token": token})


def test_the_quality_manager_sees_the_form_with_the_other_complaint_owners(case):  # noqa: F811
    html = case_page(signed_in("quinn"), case.reference)
    assert FORM in html
    form = html.split('class="change-owner"')[1].split("</form>")[0]
    assert re.findall(r'<option value="(\w+)">', form) == ["olga"]  # not owen, not staff
    assert 'name="csrf_token"' in form
    assert '<label for="owner-reason">' in form


def test_staff_and_the_owner_do_not_see_the_form_and_may_not_post(case):  # noqa: F811
    owen = signed_in("owen")
    assert FORM not in case_page(owen, case.reference)
    assert post(owen, case.reference).status_code == 403
    assert case.row().owner == "owen"


def test_the_change_needs_the_csrf_token(case):  # noqa: F811
    quinn = signed_in("quinn")
    csrf_token(quinn, f"/complaints/{case.reference}")
    response = post(quinn, case.reference, token="forged")
    assert response.status_code in (400, 403)
    assert case.row().owner == "owen"


def test_a_change_is_flashed_on_the_case_page(case):  # noqa: F811
    quinn = signed_in("quinn")
    response = post(quinn, case.reference)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/complaints/{case.reference}")
    html = case_page(quinn, case.reference)
    assert "olga is now the Complaint Owner (was owen); 1 open task moved to them." in html
    assert "Changed the Complaint Owner from owen to olga" in html  # the case's timeline
    assert case.row().owner == "olga"
    assert case.inbox("olga")[0]["bpmn_id"] == "investigate_complaint"


def test_a_refusal_is_flashed_and_changes_nothing(case):  # noqa: F811
    quinn = signed_in("quinn")
    assert post(quinn, case.reference, owner="sam").status_code == 302
    html = case_page(quinn, case.reference)
    assert "The Complaint Owner was not changed: sam is not an active user with the " \
           "complaint_owner role" in html
    post(quinn, case.reference, reason="")
    assert "give the reason for this action" in case_page(quinn, case.reference)
    assert case.row().owner == "owen"


def test_the_assignment_form_shows_a_field_error_for_someone_who_is_not_a_complaint_owner(
        classified):  # noqa: F811
    task = next(t for t in classified.inbox("olive")
                if t["bpmn_id"] == "assign_complaint_owner")
    olive = signed_in("olive")
    response = olive.post(f"/tasks/{task['id']}", data={
        "owner": "sam", "csrf_token": csrf_token(olive, f"/tasks/{task['id']}")})
    assert response.status_code == 422
    assert "sam is not an active complaint owner" in response.get_data(as_text=True)
    assert classified.row().owner is None
