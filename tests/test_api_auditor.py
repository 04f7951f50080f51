"""The auditor through the API: "reads everything except the personal data of
need-to-know cases" (issue 4), as on the pages.

Runs on SQLite and (when configured) PostgreSQL, with the fixtures of
tests/test_api_complaints.py.
"""

from __future__ import annotations

from . import test_api_complaints as shared
from .test_api_complaints import complete, listed, post, reads, references
from .test_web_api import assert_error

db = shared.db
client = shared.client
auth = shared.auth
secret = shared.secret

WITHHELD = {"name": "(withheld)", "email": "(withheld)", "phone": None, "postal_address": None}


def test_the_auditor_lists_need_to_know_cases_with_the_complainant_withheld(
        client, auth, secret):
    page = listed(client, auth, "aud")
    assert references(page) == [secret, "CMP-2026-000001"] and page["total"] == 2
    hidden, ordinary = page["items"]
    assert hidden["complainant"] == WITHHELD and hidden["personal_data_withheld"] is True
    assert hidden["summary"] == "Account details sent to a stranger"  # the rest is read
    assert hidden["need_to_know"] is True and hidden["owner"] == "owen"
    assert ordinary["complainant"]["name"] == "Ann Example"
    assert ordinary["personal_data_withheld"] is False


def test_the_auditor_reads_one_need_to_know_case_with_the_complainant_withheld(
        client, auth, secret):
    response = client.get(f"/api/v1/complaints/{secret}", headers=auth["aud"])
    assert response.status_code == 200
    record = response.get_json()
    assert record["complainant"] == WITHHELD and record["personal_data_withheld"] is True
    assert "Ann Example" not in response.get_data(as_text=True)
    assert "ann@example.org" not in response.get_data(as_text=True)
    assert record["deadline_states"] is not None


def test_the_auditor_cannot_find_a_need_to_know_case_by_the_complainants_name(
        client, auth, secret):
    assert references(listed(client, auth, "aud", q="Ann Example")) == ["CMP-2026-000001"]
    assert references(listed(client, auth, "aud", q="stranger")) == [secret]


def test_those_who_need_to_know_still_get_the_personal_data(client, auth, secret):
    for user in ("owen", "quinn", "isla"):
        record = client.get(f"/api/v1/complaints/{secret}", headers=auth[user]).get_json()
        assert record["complainant"]["name"] == "Ann Example", user
        assert record["personal_data_withheld"] is False


def test_unrelated_staff_still_learn_nothing(client, auth, secret):
    for user in ("sam", "sue", "ada"):
        page = listed(client, auth, user)
        assert secret not in references(page) and page["total"] == 1
        assert_error(client.get(f"/api/v1/complaints/{secret}", headers=auth[user]), 404,
                     "not_found")


def test_the_auditors_reads_are_audited(client, auth, secret, db):
    listed(client, auth, "aud")
    client.get(f"/api/v1/complaints/{secret}", headers=auth["aud"])
    assert [(who, ref, via) for who, _, ref, via in reads(db)] == [
        ("aud", secret, "register"), ("aud", secret, "record")]


def test_a_grant_gives_the_auditor_the_personal_data(client, auth, secret, db):
    from engine.access_grants import grant_access
    from engine.db import unit_of_work

    from .test_api_complaints import EVERYONE

    with unit_of_work(db) as uow:
        grant_access(uow.session, secret, "aud", "Audit of this breach", EVERYONE)
    record = client.get(f"/api/v1/complaints/{secret}", headers=auth["aud"]).get_json()
    assert record["complainant"]["name"] == "Ann Example"
    assert record["personal_data_withheld"] is False


def test_an_auditor_cannot_record_or_work_on_complaints(client, auth, db):
    complaint = post(client, auth)
    assert_error(client.post("/api/v1/complaints", headers=auth["aud"], json={}), 403,
                 "forbidden")
    assert client.get("/api/v1/tasks", headers=auth["aud"]).get_json() == []
    complete(db, client, auth, complaint, "log",
             {"owner": "owen", "personal_data_involved": False}, "sam")
