"""The monthly report page and its CSV export (policy 12.1; web/report_pages.py).

Runs on SQLite and (when configured) PostgreSQL; pages are requested with API bearer
tokens, which sign a request in as the session does.
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEvent
from engine.users import create_token

from . import support
from .test_reports import READERS, autumn, db, need_to_know  # noqa: F401 - fixtures
from .test_web_api import bearer


@pytest.fixture
def client(db):  # noqa: F811 - the fixture of test_reports
    return support.test_app().test_client()


@pytest.fixture
def auth(db):  # noqa: F811
    with unit_of_work(db) as uow:
        tokens = {name: create_token(uow.session, name) for name in READERS}
    return {name: bearer(token) for name, token in tokens.items()}


def get(client, auth, path, user="quinn", expect=200, **params):
    response = client.get(path, headers=auth[user], query_string=params)
    assert response.status_code == expect, response.get_data(as_text=True)
    return response


def figures(response) -> dict[tuple[str, str], str]:
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["month", "measure", "item", "value"]
    return {(measure, item): value for _, measure, item, value in rows[1:]}


def reads(db) -> list[tuple]:  # noqa: F811
    with unit_of_work(db, write=False) as uow:
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "report_read").order_by(AuditEvent.id)).all()
    return [(e.actor, e.details["month"], e.details["via"]) for e in events]


def test_the_report_needs_sign_in(client):
    for path in ("/reports/monthly", "/reports/monthly.csv"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("user", ["sam", "owen", "isla", "pat"])
def test_the_report_is_refused_to_roles_not_allowed_it(client, auth, user):
    get(client, auth, "/reports/monthly", user, expect=403)
    get(client, auth, "/reports/monthly.csv", user, expect=403)


@pytest.mark.parametrize("user", ["quinn", "sally", "aud", "ada"])
def test_the_quality_manager_senior_management_auditors_and_admins_read_it(
        client, auth, user):
    html = get(client, auth, "/reports/monthly", user).get_data(as_text=True)
    assert "Monthly report: November 2026" in html
    assert 'href="/reports/monthly"' in html  # the navigation link


def test_the_page_shows_the_last_whole_month_with_its_figures_and_no_personal_data(
        client, auth, autumn, db):  # noqa: F811
    html = get(client, auth, "/reports/monthly").get_data(as_text=True)
    assert "Monthly report: November 2026" in html
    assert 'id="fig-received">3<' in html
    assert 'id="fig-closed">2<' in html
    assert 'id="fig-median">7.0<' in html
    assert 'id="fig-escalations">1<' in html
    ack = html.split('id="deadline-acknowledge_by"')[1].split("</tr>")[0]
    assert "<td>1</td><td>1</td><td>0</td><td>0</td><td>50.0 %</td>" in ack
    assert "Parcels" in html and "Courier damage".casefold() in html.casefold()
    for personal in ("Ann Example", "ann@example.org", "Parcel arrived broken",
                     "The parcel was crushed"):
        assert personal not in html
    assert 'href="/reports/monthly.csv?month=2026-11"' in html
    assert reads(db) == [("quinn", "2026-11", "page")]


def test_a_month_can_be_chosen_and_a_bad_month_is_refused(client, auth, autumn):  # noqa: F811
    html = get(client, auth, "/reports/monthly", month="2026-12").get_data(as_text=True)
    assert "Monthly report: December 2026" in html
    assert 'id="fig-received">1<' in html
    html = get(client, auth, "/reports/monthly", expect=400,
               month="2026-13").get_data(as_text=True)
    assert "2026-13 is not a month" in html
    get(client, auth, "/reports/monthly.csv", expect=400, month="2027-01")


def test_the_csv_export_holds_the_months_figures(client, auth, autumn, db):  # noqa: F811
    response = get(client, auth, "/reports/monthly.csv", month="2026-11")
    assert response.mimetype == "text/csv"
    assert 'filename="complaints-report-2026-11.csv"' in response.headers[
        "Content-Disposition"]
    got = figures(response)
    assert got[("received", "")] == "3"
    assert got[("received_by_channel", "email")] == "1"
    assert got[("received_by_classification", "unclassified")] == "1"
    assert got[("received_by_product_or_service", "Parcels")] == "2"
    assert got[("closed", "")] == "2"
    assert got[("open_at_month_end", "")] == "2"
    assert got[("median_days_to_resolve", "")] == "7.0"
    assert got[("deadline_acknowledge_by", "met_late")] == "1"
    assert got[("deadline_acknowledge_by", "on_time_percent")] == "50.0"
    assert got[("deadline_resolve_by", "missed")] == "1"
    assert "Ann Example" not in response.get_data(as_text=True)
    assert reads(db) == [("quinn", "2026-11", "csv")]


def test_the_export_counts_need_to_know_cases_only_for_those_who_may_see_them(
        client, auth, need_to_know):  # noqa: F811
    assert figures(get(client, auth, "/reports/monthly.csv"))[("received", "")] == "2"
    assert figures(get(client, auth, "/reports/monthly.csv", "aud"))[("received", "")] == "2"
    assert figures(get(client, auth, "/reports/monthly.csv", "sally"))[
        ("received", "")] == "1"
