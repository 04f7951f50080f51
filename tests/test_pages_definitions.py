"""The definitions pages, the review dashboard and the review record (issue 6, parts 1, 6).

The policy's own diagrams (processes/) are deployed by pat, a process owner, on Monday
21 December 2026 at 14:30 London. Pages are read with bearer tokens; forms are sent
from a signed-in browser session with its CSRF token. SQLite and (when configured)
PostgreSQL.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine import governance
from engine.audit import Actor
from engine.db import unit_of_work
from engine.deploy import deploy_directory
from engine.instances import complete_task
from engine.models import DefinitionReview, HumanTask, ProcessGovernance
from engine.register import record_complaint
from engine.reviews import start_review
from engine.settings import PROJECT_ROOT
from engine.users import create_token

from .support import csrf_token, seeded_database, sign_in, test_app
from .test_reviews import APPROVE, OWNER_REVIEW, PAT, QUINN, SAM

LONDON = ZoneInfo("Europe/London")
PROCESSES = PROJECT_ROOT / "processes"
PASSWORD = "correct horse battery"
ADA = Actor("ada", frozenset({"admin"}))
USERS = {"pat": ["process_owner"], "sam": ["staff"], "quinn": ["staff", "quality_manager"],
         "ada": ["admin"], "aud": ["auditor"]}


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, USERS, [PROCESSES], PAT, "First version of the policy")


@pytest.fixture
def app(db):
    return test_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(db):
    with unit_of_work(db) as uow:
        return {name: {"Authorization": f"Bearer {create_token(uow.session, name)}"}
                for name in USERS}


def page(client, auth, user, path, status=200) -> str:
    response = client.get(path, headers=auth[user])
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_data(as_text=True)




def deploy_second_version(db, tmp_path, manual_clock):
    """complaint_handling v2, deployed by ada on Wednesday 6 January 2027 at 10:15."""
    target = tmp_path / "processes"
    shutil.copytree(PROCESSES, target)
    shutil.copytree(PROJECT_ROOT / "forms", tmp_path / "forms")
    bpmn = target / "complaint_handling.bpmn"
    bpmn.write_text(bpmn.read_text() + "\n<!-- revised -->\n")
    manual_clock.set(datetime(2027, 1, 6, 10, 15, tzinfo=LONDON))
    with unit_of_work(db) as uow:
        result = deploy_directory(uow.session, target, ADA,
                                  "Acknowledge within 2 working days, not 3")
    assert result.ok


def record(db, n=1):
    for _ in range(n):
        with unit_of_work(db) as uow:
            record_complaint(uow, {"channel": "letter", "complainant": {"name": "Ann"},
                                   "summary": "s", "description": "d"}, SAM)


def version_row(html: str, version: int) -> str:
    return re.search(rf'<tr id="v{version}">(.*?)</tr>', html, re.S).group(1)


def test_each_version_shows_who_deployed_it_when_and_its_change_note(
        db, client, auth, tmp_path, manual_clock):
    deploy_second_version(db, tmp_path, manual_clock)
    html = page(client, auth, "pat", "/definitions/complaint_handling")
    v1, v2 = version_row(html, 1), version_row(html, 2)
    assert "pat" in v1 and "Mon 21 Dec 2026, 14:30" in v1
    assert "First version of the policy" in v1
    assert "ada" in v2 and "Wed 06 Jan 2027, 10:15" in v2
    assert "Acknowledge within 2 working days, not 3" in v2
    assert "(current)" in v2 and "(current)" not in v1
    assert html.index('id="v2"') < html.index('id="v1"')  # newest first
    assert "Tue 21 Dec 2027" in html  # the review due date, one year after deployment


def test_running_instances_are_counted_per_version_and_linked_to_the_inspector(
        db, client, auth, tmp_path, manual_clock):
    record(db, 1)
    deploy_second_version(db, tmp_path, manual_clock)
    record(db, 2)
    html = page(client, auth, "ada", "/definitions/complaint_handling")
    assert ('href="/admin/instances?process=complaint_handling&amp;version=1">1</a>'
            in version_row(html, 1))
    assert ('href="/admin/instances?process=complaint_handling&amp;version=2">2</a>'
            in version_row(html, 2))
    listing = page(client, auth, "quinn", "/definitions")
    row = re.search(r'<th scope="row"><a href="/definitions/complaint_handling">.*?</tr>',
                    listing, re.S).group(0)
    assert "v2" in row and "<td>3</td>" in row  # not an admin: a count without a link


def test_process_owners_and_admins_download_any_versions_files(
        db, client, auth, tmp_path, manual_clock):
    deploy_second_version(db, tmp_path, manual_clock)
    response = client.get("/definitions/complaint_handling/versions/1/files.zip",
                          headers=auth["pat"])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="complaint_handling-v1.zip"')
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert "forms/send_acknowledgement.json" in archive.namelist()
    first = archive.read("complaint_handling.bpmn").decode()
    assert first == (PROCESSES / "complaint_handling.bpmn").read_text()
    response = client.get(
        "/definitions/complaint_handling/versions/2/files/complaint_handling.bpmn",
        headers=auth["ada"])
    assert response.status_code == 200
    assert response.get_data(as_text=True).endswith("<!-- revised -->\n")
    assert client.get("/definitions/complaint_handling/versions/3/files.zip",
                      headers=auth["ada"]).status_code == 404


@pytest.mark.parametrize("user", ["sam", "quinn", "aud"])
def test_others_may_not_download_a_definitions_files(db, client, auth, user):
    for path in ("/definitions/complaint_handling/versions/1/files.zip",
                 "/definitions/complaint_handling/versions/1/files/complaint_handling.bpmn"):
        assert client.get(path, headers=auth[user]).status_code == 403
    if user != "sam":
        html = page(client, auth, user, "/definitions/complaint_handling")
        assert "files.zip" not in html


def test_staff_do_not_see_the_definitions_pages(db, client, auth):
    for path in ("/definitions", "/reviews", "/definitions/complaint_handling"):
        assert client.get(path, headers=auth["sam"]).status_code == 403


def test_the_dashboard_lists_reviews_overdue_and_due_within_thirty_days(
        db, client, auth, manual_clock):
    manual_clock.set(datetime(2027, 12, 10, 9, 0, tzinfo=LONDON))
    with unit_of_work(db) as uow:
        governance.set_governance(uow.session, "acknowledgement", "pat", "6", QUINN)
        closure = uow.session.get(ProcessGovernance, "closure")
        closure.last_approved_at = datetime(2027, 12, 1, 12, 0, tzinfo=LONDON)
        governance.set_governance(uow.session, "closure", "pat", "12", QUINN)
    html = page(client, auth, "quinn", "/reviews")
    overdue = html[html.index('id="overdue-heading"'):html.index('id="due-heading"')]
    due = html[html.index('id="due-heading"'):]
    assert "Overdue (1)" in overdue
    assert "/definitions/acknowledgement" in overdue and "Mon 21 Jun 2027" in overdue
    assert "/definitions/complaint_handling" in due and "Tue 21 Dec 2027" in due
    assert "/definitions/closure" not in html  # approved this month: next due in 2028
    assert 'action="/definitions/complaint_handling/reviews"' in due
    assert "overdue" in page(client, auth, "aud", "/definitions")


def test_a_review_is_started_from_the_dashboard_with_the_csrf_token(db, client):
    sign_in(client, "pat")
    assert client.post("/definitions/complaint_handling/reviews",
                       data={"back": "reviews"}).status_code == 400
    token = csrf_token(client, "/reviews")
    response = client.post("/definitions/complaint_handling/reviews",
                           data={"back": "reviews", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/reviews")
    with unit_of_work(db, write=False) as uow:
        review = uow.session.scalars(select(DefinitionReview)).one()
        task = uow.session.scalars(select(HumanTask).where(
            HumanTask.instance_id == review.instance_id)).one()
    assert task.bpmn_id == "review_process_definition"
    html = client.get("/definitions/complaint_handling").get_data(as_text=True)
    assert f"review {review.id}</a>, started by pat" in html
    dashboard = client.get("/reviews").get_data(as_text=True)
    under_way = dashboard[dashboard.index('id="under-way-heading"'):]
    assert f"Review {review.id} of complaint_handling</a>, started by pat" in under_way
    again = client.post("/definitions/complaint_handling/reviews", data={"csrf_token": token},
                        follow_redirects=True)
    assert "already under way" in again.get_data(as_text=True)


def test_staff_may_not_start_a_review(db, client):
    sign_in(client, "sam")
    token = csrf_token(client, "/inbox")
    assert client.post("/definitions/complaint_handling/reviews",
                       data={"csrf_token": token}).status_code == 403


def test_the_quality_manager_changes_the_interval_and_a_wrong_one_changes_nothing(db, client):
    sign_in(client, "quinn")
    token = csrf_token(client, "/definitions/complaint_handling")
    bad = client.post("/definitions/complaint_handling/governance",
                      data={"owner": "pat", "review_interval_months": "18", "csrf_token": token})
    assert bad.status_code == 422
    assert "at least annually" in bad.get_data(as_text=True)
    assert 'value="18"' in bad.get_data(as_text=True)  # what was typed is shown again
    with unit_of_work(db, write=False) as uow:
        assert uow.session.get(ProcessGovernance, "complaint_handling").review_interval_months == 12
    good = client.post("/definitions/complaint_handling/governance",
                       data={"owner": "pat", "review_interval_months": "6", "csrf_token": token},
                       follow_redirects=True)
    assert good.status_code == 200
    assert "Mon 21 Jun 2027" in good.get_data(as_text=True)


def test_a_process_owner_may_not_change_the_interval(db, client):
    sign_in(client, "pat")
    token = csrf_token(client, "/definitions/complaint_handling")
    html = client.get("/definitions/complaint_handling").get_data(as_text=True)
    assert "/governance" not in html
    assert client.post("/definitions/complaint_handling/governance",
                       data={"owner": "pat", "review_interval_months": "6",
                             "csrf_token": token}).status_code == 403


def test_the_review_record_shows_approver_date_outcome_version_and_next_review_date(
        db, client, auth, manual_clock):
    manual_clock.set(datetime(2027, 11, 30, 10, 0, tzinfo=LONDON))
    with unit_of_work(db) as uow:
        review_id = start_review(uow, "complaint_handling", PAT).id
    for data, actor in ((OWNER_REVIEW, PAT), (APPROVE, QUINN)):
        if actor is QUINN:
            manual_clock.set(datetime(2027, 12, 2, 15, 0, tzinfo=LONDON))
        with unit_of_work(db) as uow:
            review = uow.session.get(DefinitionReview, review_id)
            task_id = uow.session.scalars(select(HumanTask.id).where(
                HumanTask.instance_id == review.instance_id, HumanTask.state == "ready")).one()
        with unit_of_work(db) as uow:
            complete_task(uow, task_id, data, actor)

    path = f"/definitions/complaint_handling/reviews/{review_id}"
    html = page(client, auth, "aud", path)  # auditors read review records
    record_part = html[html.index("<dl"):html.index("</dl>")]
    assert "Approved" in record_part
    assert "Priya Shah (Quality Manager) (signed in as quinn)" in record_part
    assert "Thu 02 Dec 2027, 15:00" in record_part
    assert "v1, SHA-256" in record_part
    assert "Sat 02 Dec 2028" in record_part
    assert OWNER_REVIEW["review_findings"] in record_part
    figures = html[html.index("The last year's figures (2026-11 to 2027-10)"):]
    assert "<th scope=\"col\">Logged late</th>" in figures
    assert "<th scope=\"row\">2027-10</th>" in figures
    text = client.get(path + ".txt", headers=auth["quinn"])
    assert text.mimetype == "text/plain"
    body = text.get_data(as_text=True)
    for line in ("Outcome:          approved",
                 "Approver:         Priya Shah (Quality Manager) (signed in as quinn)",
                 "Date:             Thu 02 Dec 2027, 15:00 (Europe/London)",
                 "Version:          v1",
                 "Next review date: Sat 02 Dec 2028",
                 "  2027-10: 0 received (minor 0, major 0, unclassified 0)"):
        assert line in body
    listing = page(client, auth, "quinn", "/definitions/complaint_handling")
    records = listing[listing.index('id="records-heading"'):]
    assert f'href="{path}"' in records and "approved" in records
    assert "Sat 02 Dec 2028" in listing  # the new review due date
    assert client.get("/definitions/complaint_handling/reviews/999",
                      headers=auth["quinn"]).status_code == 404
    assert client.get(f"/definitions/acknowledgement/reviews/{review_id}",
                      headers=auth["quinn"]).status_code == 404


def test_the_editor_is_linked_for_process_owners_when_it_exists(db, app, client, auth):
    exists = "editor_pages.edit" in app.view_functions
    owner = page(client, auth, "pat", "/definitions/complaint_handling")
    assert ("/definitions/complaint_handling/edit" in owner) == exists
    assert "/definitions/complaint_handling/edit" not in page(
        client, auth, "quinn", "/definitions/complaint_handling")
