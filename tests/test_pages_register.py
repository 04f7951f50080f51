"""The register pages (issue 4): the register, its CSV export and the case page.

Every test runs on SQLite and (when configured) on PostgreSQL. Pages are requested
with API bearer tokens, which sign a request in as well as the session does.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEvent
from engine.users import create_token
from web.register_pages import CSV_FIELDS

from .conftest import FIXTURES
from .support import seeded_database, test_app
from .test_api_complaints import EVERYONE, USERS, complete, post
from .test_web_api import bearer


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, USERS, [FIXTURES / "register"], EVERYONE)


@pytest.fixture
def client(db):
    return test_app().test_client()


@pytest.fixture
def auth(db):
    with unit_of_work(db) as uow:
        tokens = {name: create_token(uow.session, name) for name in USERS}
    return {name: bearer(token) for name, token in tokens.items()}


@pytest.fixture
def register(db, client, auth, manual_clock):
    """Four complaints (now is Monday 21 December 2026, 14:30 London)."""
    made = {}
    for received, name, channel, summary in [
        ("2026-07-01T23:30:00+00:00", "Eve Early", "website", "Summer query"),
        ("2026-12-14T10:00:00+00:00", "Ann Able", "email", "Late delivery"),
        ("2026-12-18T10:00:00+00:00", "Bob Baker", "letter", "Rude driver"),
        ("2026-12-21T09:00:00+00:00", "Cat O'Hara", "telephone", "Wrong size"),
    ]:
        made[name] = post(client, auth, received_at=received, channel=channel,
                          summary=summary, complainant={"name": name})
    complete(db, client, auth, made["Bob Baker"], "log",
             {"owner": "owen", "personal_data_involved": False}, "sam")
    complete(db, client, auth, made["Bob Baker"], "classify", {"classification": "major"},
             "quinn")
    return {name: record["reference"] for name, record in made.items()}


@pytest.fixture
def secret(db, client, auth):
    """An ordinary complaint and a need-to-know one owned by owen."""
    post(client, auth, summary="Ordinary")
    complaint = post(client, auth, user="sue", summary="Account details sent to a stranger",
                     complainant={"name": "Zed Private", "email": "zed@example.org",
                                  "phone": "01234 567890"})
    complete(db, client, auth, complaint, "log",
             {"owner": "owen", "personal_data_involved": True}, "sue")
    return complaint["reference"]


def page(client, auth, user="sam", expect=200, **params) -> str:
    response = client.get("/register", headers=auth[user], query_string=params)
    assert response.status_code == expect, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def listed(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/complaints/(CMP-\d{4}-\d{6})">', html)


def exported(client, auth, user="sam", **params) -> list[list[str]]:
    response = client.get("/register.csv", headers=auth[user], query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def reads(db) -> list[tuple]:
    with unit_of_work(db, write=False) as uow:
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "complaint_read").order_by(AuditEvent.id)).all()
    return [(e.actor, e.address, e.details["reference"], e.details["via"]) for e in events]


# -- the register --------------------------------------------------------------------------

def test_the_register_needs_sign_in(client, db):
    response = client.get("/register")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert client.get("/register.csv").status_code == 302
    assert client.get("/complaints/CMP-2026-000001").status_code == 302


def test_the_register_lists_newest_receipt_first(client, auth, register):
    html = page(client, auth)
    assert listed(html) == [register[n] for n in
                            ("Cat O'Hara", "Bob Baker", "Ann Able", "Eve Early")]
    assert "4 complaints." in html
    bob = html.split(register["Bob Baker"])[2].split("</tr>")[0]
    assert "Fri 18 Dec 2026, 10:00" in bob  # received, London
    for text in ("letter", "Rude driver", "major", "investigating", "owen",
                 "acknowledge_by: <time", "Wed 23 Dec 2026, 10:00", "(on time)"):
        assert text in bob, text
    eve = html.split(register["Eve Early"])[2].split("</tr>")[0]
    assert "Thu 02 Jul 2026, 00:30" in eve  # British Summer Time
    assert "(overdue)" in eve


@pytest.mark.parametrize(("q", "names"), [
    ("BAKER", ["Bob Baker"]),
    ("late", ["Ann Able"]),
    ("cmp-2026-000001", ["Eve Early"]),
    ("o'hara", ["Cat O'Hara"]),
    ("%", []),
])
def test_the_register_searches_reference_summary_and_name(client, auth, register, q, names):
    assert listed(page(client, auth, q=q)) == [register[n] for n in names]


@pytest.mark.parametrize(("params", "names"), [
    ({"status": "investigating"}, ["Bob Baker"]),
    ({"status": "received", "channel": "email"}, ["Ann Able"]),
    ({"classification": "major"}, ["Bob Baker"]),
    ({"channel": "website"}, ["Eve Early"]),
    ({"owner": "owen"}, ["Bob Baker"]),
    ({"from": "2026-12-18", "to": "2026-12-21"}, ["Cat O'Hara", "Bob Baker"]),
    ({"from": "2026-12-19"}, ["Cat O'Hara"]),
    ({"to": "2026-12-14"}, ["Ann Able", "Eve Early"]),
    ({"from": "2026-07-02", "to": "2026-07-02"}, ["Eve Early"]),  # 23:30 UTC is 2 July
    ({"from": "2026-07-01", "to": "2026-07-01"}, []),
    ({"overdue": "1"}, ["Ann Able", "Eve Early"]),
    ({"overdue": "1", "channel": "email"}, ["Ann Able"]),
    ({"status": "", "channel": "", "q": "", "overdue": ""}, ["Cat O'Hara", "Bob Baker",
                                                            "Ann Able", "Eve Early"]),
])
def test_the_register_filters(client, auth, register, params, names):
    assert listed(page(client, auth, **params)) == [register[n] for n in names]


def test_a_met_deadline_is_not_overdue_but_a_missed_one_is(client, auth, register, manual_clock,
                                                           db):
    # Bob's log_by (Mon 10:00) was met late; his acknowledge_by is Wed 23 Dec 10:00.
    manual_clock.advance(days=2)  # Wed 23 Dec 14:30
    assert register["Bob Baker"] in listed(page(client, auth, overdue="1"))
    assert register["Cat O'Hara"] in listed(page(client, auth, overdue="1"))


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"), ({"channel": "fax"}, "channel"),
    ({"classification": "huge"}, "classification"), ({"from": "21/12/2026"}, "from"),
    ({"from": "2026-12-22", "to": "2026-12-21"}, "to"), ({"page": "two"}, "page"),
    ({"page": "0"}, "page"),
])
def test_bad_filters_are_explained(client, auth, register, params, field):
    html = page(client, auth, expect=400, **params)
    assert f'<a href="#f-{field}">{field}</a>' in html
    assert listed(html) == []
    response = client.get("/register.csv", headers=auth["sam"], query_string=params)
    assert response.status_code == 400


def test_the_register_pages_by_25_keeping_the_filter(client, auth, db, manual_clock):
    for n in range(27):
        post(client, auth, summary=f"Complaint {n}", channel="email")
    post(client, auth, summary="By letter", channel="letter")
    first = page(client, auth, channel="email")
    assert len(listed(first)) == 25
    assert "27 complaints, page 1 of 2." in first
    assert 'href="/register?channel=email&amp;page=2"' in first
    assert 'rel="prev"' not in first
    second = page(client, auth, channel="email", page="2")
    assert len(listed(second)) == 2
    assert 'rel="prev" href="/register?channel=email&amp;page=1"' in second
    assert set(listed(first)).isdisjoint(listed(second))
    assert listed(page(client, auth, channel="email", page="3")) == []


# -- the export ------------------------------------------------------------------------------

def test_the_export_holds_the_current_filter_on_every_page(client, auth, register, db):
    for n in range(26):
        post(client, auth, summary=f"More {n}", channel="website")
    rows = exported(client, auth, channel="website")
    assert rows[0] == list(CSV_FIELDS)
    assert rows[0][:4] == ["reference", "channel", "received_at", "complainant.name"]
    assert len(rows) == 1 + 27
    assert {row[1] for row in rows[1:]} == {"website"}

    rows = exported(client, auth, q="baker")
    assert len(rows) == 2
    bob = dict(zip(rows[0], rows[1], strict=True))
    assert bob["reference"] == register["Bob Baker"]
    assert bob["received_at"] == "2026-12-18T10:00:00+00:00"
    assert bob["complainant.name"] == "Bob Baker"
    assert (bob["classification"], bob["owner"], bob["status"]) == ("major", "owen",
                                                                    "investigating")
    assert bob["personal_data_involved"] == "false"
    assert '"acknowledge_by": "2026-12-23T10:00:00+00:00"' in bob["deadlines"]
    assert exported(client, auth, q="nobody") == [list(CSV_FIELDS)]


def test_the_export_defuses_spreadsheet_formulas(client, auth, db):
    post(client, auth, summary="=HYPERLINK(\"http://evil\")", complainant={"name": "@Mal"})
    row = dict(zip(*exported(client, auth), strict=True))
    assert row["summary"] == "'=HYPERLINK(\"http://evil\")"
    assert row["complainant.name"] == "'@Mal"


# -- need to know ------------------------------------------------------------------------------

@pytest.mark.parametrize("user", ["sam", "sue", "ada"])
def test_a_need_to_know_complaint_is_hidden_from_everyone_else(client, auth, secret, user):
    html = page(client, auth, user)
    assert listed(html) == ["CMP-2026-000001"]
    assert "1 complaint." in html
    assert listed(page(client, auth, user, q="stranger")) == []
    assert [row[0] for row in exported(client, auth, user)] == ["reference", "CMP-2026-000001"]
    response = client.get(f"/complaints/{secret}", headers=auth[user])
    assert response.status_code == 404
    assert "stranger" not in response.get_data(as_text=True)


@pytest.mark.parametrize("user", ["owen", "quinn", "isla"])
def test_the_owner_the_iso_and_the_qm_see_it_and_their_reads_are_audited(
        client, auth, secret, user, db):
    html = page(client, auth, user)
    assert listed(html) == [secret, "CMP-2026-000001"]
    assert "2 complaints." in html
    rows = exported(client, auth, user)
    assert [row[3] for row in rows] == ["complainant.name", "Zed Private", "Ann Example"]
    response = client.get(f"/complaints/{secret}", headers=auth[user],
                          environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 200
    case = response.get_data(as_text=True)
    assert "zed@example.org" in case and "01234 567890" in case
    client.get("/complaints/CMP-2026-000001", headers=auth[user])  # not need-to-know
    assert reads(db) == [(user, "127.0.0.1", secret, "register_page"),
                         (user, "127.0.0.1", secret, "register_csv"),
                         (user, "198.51.100.7", secret, "case_page")]


def test_the_auditor_sees_need_to_know_complaints_without_their_personal_data(
        client, auth, secret, db):
    assert listed(page(client, auth, "aud")) == [secret, "CMP-2026-000001"]
    assert listed(page(client, auth, "aud", q="stranger")) == [secret]
    assert listed(page(client, auth, "aud", q="zed")) == []  # not found by the name
    rows = exported(client, auth, "aud")
    zed = dict(zip(rows[0], rows[1], strict=True))
    assert (zed["reference"], zed["complainant.name"], zed["complainant.email"],
            zed["complainant.phone"], zed["complainant.postal_address"]) == (
        secret, "(withheld)", "(withheld)", "(withheld)", "")
    assert dict(zip(rows[0], rows[2], strict=True))["complainant.name"] == "Ann Example"
    case = client.get(f"/complaints/{secret}", headers=auth["aud"]).get_data(as_text=True)
    assert "Account details sent to a stranger" in case
    assert "Zed" not in case and "zed@example.org" not in case and "567890" not in case
    assert "personal data is withheld from you" in case
    assert [r[0::3] for r in reads(db)] == [("aud", "register_page"), ("aud", "register_page"),
                                            ("aud", "register_csv"), ("aud", "case_page")]
    # The JSON API withholds it the same way (tests/test_api_auditor.py).
    record = client.get(f"/api/v1/complaints/{secret}", headers=auth["aud"]).get_json()
    assert record["personal_data_withheld"] is True
    assert record["complainant"]["name"] == "(withheld)"


# -- the case page -----------------------------------------------------------------------------

def test_the_case_page_shows_the_record_deadlines_tasks_and_timeline(
        client, auth, register, manual_clock):
    bob = register["Bob Baker"]
    response = client.get(f"/complaints/{bob.lower()}", headers=auth["sam"])
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<h1>{bob}: Rude driver</h1>" in html
    assert "Bob Baker" in html
    deadlines = re.findall(r'<th scope="row">(\w+)</th>\s*<td><time[^>]*>([^<]+)</time></td>'
                           r'\s*<td class="deadline-[\w-]+">([\w ]*\w)', html)
    assert deadlines == [("log_by", "Mon 21 Dec 2026, 10:00", "met late"),
                         ("acknowledge_by", "Wed 23 Dec 2026, 10:00", "on time")]
    tasks = html.split('id="tasks-heading"')[1].split("</section>")[0]
    assert "Resolve" in tasks and "owen" in tasks
    timeline = re.findall(r"<li><time[^>]*>([^<]+)</time> · <span class=\"who\">(\w+)</span>"
                          r" · ([^<]+)</li>", html)
    assert ("Mon 21 Dec 2026, 14:30", "sam", "Recorded the complaint (received by letter)") \
        in timeline
    texts = [t[2] for t in timeline]
    assert texts.index("“Log the complaint” became ready") \
        < texts.index("Completed “Log the complaint”") \
        < texts.index("Completed “Classify”") < texts.index("“Resolve” became ready")
    assert ("Mon 21 Dec 2026, 14:30", "quinn", "Completed “Classify”") in timeline


def test_deadline_states_follow_the_clock(client, auth, register, manual_clock):
    cat = register["Cat O'Hara"]

    def states() -> list[tuple[str, str]]:
        html = client.get(f"/complaints/{cat}", headers=auth["sam"]).get_data(as_text=True)
        return re.findall(r'<th scope="row">(\w+)</th>.*?<td class="deadline-[\w-]+">([\w ]+)',
                          html, re.S)

    # log_by (Tue 09:00) was computed Mon 14:30: due soon once 80% of that time has passed.
    assert states() == [("log_by", "on time"), ("acknowledge_by", "on time")]
    manual_clock.advance(hours=15)  # Tue 22 Dec 05:30
    assert states() == [("log_by", "due soon"), ("acknowledge_by", "on time")]
    manual_clock.advance(hours=9)  # Tue 22 Dec 14:30: log_by (09:00) has passed
    assert states() == [("log_by", "overdue"), ("acknowledge_by", "on time")]
    assert "Open tasks" in client.get(f"/complaints/{cat}", headers=auth["sam"]).get_data(
        as_text=True)


def test_an_unknown_case_is_404(client, auth, db):
    assert client.get("/complaints/CMP-2026-999999", headers=auth["sam"]).status_code == 404
    assert client.get("/complaints/" + "x" * 300, headers=auth["sam"]).status_code == 404


def test_case_text_is_escaped(client, auth, db):
    record = post(client, auth, summary="<script>alert(1)</script>",
                  description="<b>bold</b> & \"quoted\"",
                  complainant={"name": "<img src=x onerror=alert(2)>"})
    html = client.get(f"/complaints/{record['reference']}",
                      headers=auth["sam"]).get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    listing = page(client, auth, q="script")
    assert "<script>alert(1)" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
