"""The business calendar page (issue 5, part 5): bank holidays in force for the configured
region, company closure days added and removed by admins, and deadlines computed before a
change left where they were. On SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEvent, ClosureDay

from .test_deadlines import make_world, record_complaint
from .test_web_api import PASSWORD


@pytest.fixture
def world(db_url, manual_clock, monkeypatch):
    return make_world(db_url, manual_clock, monkeypatch)


def page(client, tokens, user="ada", expect=200) -> str:
    response = client.get("/admin/calendar", headers=tokens[user])
    assert response.status_code == expect
    return response.get_data(as_text=True)


def add(client, tokens, day: str, reason: str = "Office move", user="ada"):
    return client.post("/admin/calendar/closures", data={"day": day, "reason": reason},
                       headers=tokens[user])


def closures(db) -> dict[date, str]:
    with unit_of_work(db, write=False) as uow:
        return {c.day: c.reason for c in uow.session.scalars(select(ClosureDay))}


def audited(db) -> list[tuple]:
    with unit_of_work(db, write=False) as uow:
        return [(e.actor, e.action, e.details) for e in uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("closure_day_%"))
            .order_by(AuditEvent.id))]


def holidays_listed(html: str) -> list[tuple[str, str]]:
    table = html.split('id="holidays-heading"')[1].split("</table>")[0]
    return [(day, unescape(name)) for day, name in re.findall(
        r'<time datetime="([\d-]+)">[^<]+</time></th>\s*<td>([^<]+)</td>', table)]


def test_admins_see_the_bank_holidays_of_this_year_and_next_for_the_region(world):
    db, client, tokens, clock = world  # now: December 2026
    html = page(client, tokens)
    listed = holidays_listed(html)
    assert ("2026-12-25", "Christmas Day") in listed
    assert ("2026-12-28", "Boxing Day (observed)") in listed
    assert ("2027-01-01", "New Year's Day") in listed
    assert ("2027-12-28", "Boxing Day (observed)") in listed
    assert not [d for d, _ in listed if not d.startswith(("2026", "2027"))]
    assert "England" in html and "GB-ENG" in html
    assert "Thu 24 Dec 2026" not in html  # no closure days yet


def test_scotland_has_its_own_bank_holidays(world, monkeypatch):
    db, client, tokens, clock = world
    monkeypatch.setenv("COMPLAINTS_CALENDAR", "GB-SCT")
    listed = holidays_listed(page(client, tokens))
    assert ("2027-01-04", "New Year Holiday (observed)") in listed
    assert ("2026-11-30", "Saint Andrew's Day") in listed
    assert not any(name.startswith("Easter Monday") for _, name in listed)


def test_the_page_says_changes_apply_only_to_deadlines_computed_afterwards(world):
    db, client, tokens, clock = world
    html = page(client, tokens)
    assert "Changes apply to deadlines computed after them." in html
    assert "Deadlines already computed are stored with their complaint" in html
    assert "not moved" in html


def test_the_calendar_is_for_admins_only(world):
    db, client, tokens, clock = world
    for user in ("sam", "quinn"):
        page(client, tokens, user, expect=403)
        assert add(client, tokens, "2027-01-05", user=user).status_code == 403
    assert closures(db) == {}
    assert client.get("/admin/calendar").status_code == 302  # to the sign-in page


def test_an_admin_adds_and_removes_a_closure_day_and_both_are_audited(world):
    db, client, tokens, clock = world
    response = add(client, tokens, "2027-01-05", "  Stock   take ")
    assert response.status_code == 302
    assert closures(db) == {date(2027, 1, 5): "Stock take"}
    html = client.get(response.headers["Location"], headers=tokens["ada"]).get_data(
        as_text=True)
    assert "Tuesday 05 January 2027 is now a company closure day" in html
    assert "deadlines already computed are not moved" in html
    closure_table = html.split('id="closures-heading"')[1].split("</table>")[0]
    assert "Tue 05 Jan 2027" in closure_table and "Stock take" in closure_table

    response = client.post("/admin/calendar/closures/2027-01-05/remove", headers=tokens["ada"])
    assert response.status_code == 302
    assert closures(db) == {}
    assert audited(db) == [
        ("ada", "closure_day_added", {"day": "2027-01-05", "reason": "Stock take"}),
        ("ada", "closure_day_removed", {"day": "2027-01-05"})]


def test_removing_a_day_that_is_not_a_closure_day_changes_nothing(world):
    db, client, tokens, clock = world
    response = client.post("/admin/calendar/closures/2027-01-05/remove", headers=tokens["ada"])
    html = client.get(response.headers["Location"], headers=tokens["ada"]).get_data(
        as_text=True)
    assert "Tuesday 05 January 2027 is not a closure day: nothing was changed." in html
    assert audited(db) == []
    assert client.post("/admin/calendar/closures/next-tuesday/remove",
                       headers=tokens["ada"]).status_code == 404


def test_bad_closure_input_gets_a_specific_error_and_changes_nothing(world):
    db, client, tokens, clock = world
    add(client, tokens, "2027-01-05", "Stock take")
    for day, reason, message in [
        ("", "Office move", "Give the date of the closure day."),
        ("05/01/2027", "Office move", "is not a date: give it as YYYY-MM-DD"),
        ("2027-02-30", "Office move", "is not a date"),
        ("2090-01-01", "Office move", "Give a date within 10 years of today."),
        ("2027-01-06", "   ", "Give the reason for the closure"),
        ("2027-01-06", "x" * 256, "The reason has at most 255 characters."),
        ("2027-01-05", "Again", "Tuesday 05 January 2027 is already a closure day."),
    ]:
        response = add(client, tokens, day, reason)
        assert response.status_code == 422, (day, reason)
        html = response.get_data(as_text=True)
        assert message in html, (day, reason)
        assert 'aria-invalid="true"' in html
    assert closures(db) == {date(2027, 1, 5): "Stock take"}
    assert len(audited(db)) == 1


def test_closure_forms_need_the_csrf_token_in_a_browser_session(world):
    db, client, tokens, clock = world
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    client.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token})
    refused = client.post("/admin/calendar/closures", data={"day": "2027-01-05",
                                                            "reason": "Office move"})
    assert refused.status_code == 400
    assert closures(db) == {}
    html = client.get("/admin/calendar").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    accepted = client.post("/admin/calendar/closures", data={
        "day": "2027-01-05", "reason": "Office move", "csrf_token": token})
    assert accepted.status_code == 302
    assert closures(db) == {date(2027, 1, 5): "Office move"}


def test_a_closure_day_moves_deadlines_computed_after_it_but_not_before(world):
    db, client, tokens, clock = world
    clock.set(clock.now().replace(day=21, hour=14, minute=30))  # Monday 21 December 2026

    def deadlines(reference: str) -> dict[str, str]:
        return client.get(f"/api/v1/complaints/{reference}",
                          headers=tokens["quinn"]).get_json()["deadlines"]

    before = record_complaint(client, tokens)
    assert deadlines(before) == {"log_by": "2026-12-22T14:30:00+00:00",
                                 "acknowledge_by": "2026-12-24T14:30:00+00:00"}
    assert add(client, tokens, "2026-12-22", "Office move").status_code == 302
    after = record_complaint(client, tokens)
    # Tuesday 22nd is closed: Wednesday 23rd is the first business day, and the third is
    # Tuesday 29th (Christmas, the weekend and Boxing Day observed are skipped).
    assert deadlines(after) == {"log_by": "2026-12-23T14:30:00+00:00",
                                "acknowledge_by": "2026-12-29T14:30:00+00:00"}
    assert deadlines(before) == {"log_by": "2026-12-22T14:30:00+00:00",
                                 "acknowledge_by": "2026-12-24T14:30:00+00:00"}
    # Removing it again does not move the second complaint's deadlines back either.
    client.post("/admin/calendar/closures/2026-12-22/remove", headers=tokens["ada"])
    assert deadlines(after)["acknowledge_by"] == "2026-12-29T14:30:00+00:00"
