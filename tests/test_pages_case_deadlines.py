"""The case page's deadlines (issue 5, part 3): state, London time with the weekday, and
when each deadline was met or missed; open tasks with their state. On the policy's own
processes, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from .test_deadlines import (
    ACKNOWLEDGE,
    LOG,
    RECEIVED,
    fire_timers,
    make_world,
    record_complaint,
    work_on,
)


@pytest.fixture
def world(db_url, manual_clock, monkeypatch):
    return make_world(db_url, manual_clock, monkeypatch)


def deadline_rows(client, tokens, reference: str, user: str = "quinn") -> dict[str, list[str]]:
    response = client.get(f"/complaints/{reference}", headers=tokens[user])
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    table = html.split('id="deadlines-heading"')[1].split("</table>")[0]
    rows = {}
    for row in table.split("<tr>")[2:]:
        name = re.search(r'<th scope="row">(\w+)</th>', row).group(1)
        cells = [re.sub(r"<[^>]+>", "", cell).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows[name] = cells
    return rows


def task_rows(client, tokens, reference: str) -> list[list[str]]:
    html = client.get(f"/complaints/{reference}", headers=tokens["quinn"]).get_data(
        as_text=True)
    table = html.split('id="tasks-heading"')[1].split("</table>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in table.split("<tr>")[2:]]


def test_the_case_page_shows_each_deadline_due_in_london_time_with_its_state(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    assert deadline_rows(client, tokens, reference) == {
        "log_by": ["Thu 24 Dec 2026, 10:00", "on time", "—", "Log in the register"],
        "acknowledge_by": ["Wed 30 Dec 2026, 10:00", "on time", "—", "Acknowledge"],
    }
    clock.advance(hours=20)  # Thu 24 Dec 06:00: 20 of the 24 hours to log_by have passed
    assert deadline_rows(client, tokens, reference)["log_by"][1] == "due soon"
    assert task_rows(client, tokens, reference) == [
        ["Complete the register record", "staff", "Thu 24 Dec 2026, 10:00", "due soon"]]


def test_a_deadline_met_late_shows_met_late_with_the_actual_time(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    clock.advance(days=1, hours=2)  # Thursday 24 December 12:00, two hours late
    fire_timers(db)
    missed = deadline_rows(client, tokens, reference)["log_by"]
    assert missed == ["Thu 24 Dec 2026, 10:00", "overdue",
                      "Missed (recorded Thu 24 Dec 2026, 12:00)", "Log in the register"]

    clock.advance(minutes=30)
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    rows = deadline_rows(client, tokens, reference)
    assert rows["log_by"] == [
        "Thu 24 Dec 2026, 10:00", "met late",
        "Missed (recorded Thu 24 Dec 2026, 12:00); met late Thu 24 Dec 2026, 12:30",
        "Log in the register"]
    assert rows["acknowledge_by"][1:3] == ["on time", "—"]


def test_a_deadline_met_in_time_shows_met_with_the_actual_time_in_summer_time(world):
    db, client, tokens, clock = world
    received = RECEIVED.replace(month=7, day=1)  # Wednesday 1 July 2026, 11:00 BST
    clock.set(received)
    reference = record_complaint(client, tokens, received_at=received.isoformat())
    clock.advance(hours=1)
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    clock.advance(hours=1)
    work_on(client, tokens, "sam", "send_acknowledgement", ACKNOWLEDGE)
    rows = deadline_rows(client, tokens, reference)
    assert rows["log_by"][:3] == ["Thu 02 Jul 2026, 11:00", "met",
                                  "Met Wed 01 Jul 2026, 12:00"]
    assert rows["acknowledge_by"][:3] == ["Mon 06 Jul 2026, 11:00", "met",
                                          "Met Wed 01 Jul 2026, 13:00"]


def test_the_timeline_tells_when_a_deadline_was_missed_and_met(world):
    db, client, tokens, clock = world
    reference = record_complaint(client, tokens, received_at=RECEIVED.isoformat())
    clock.advance(days=1, hours=2)
    fire_timers(db)
    clock.advance(timedelta(minutes=30))
    work_on(client, tokens, "sam", "complete_register_record", LOG)
    html = client.get(f"/complaints/{reference}", headers=tokens["quinn"]).get_data(
        as_text=True)
    assert "Missed the deadline “Log in the register” (due Thu 24 Dec 2026, 10:00)" in html
    assert "Met the deadline “Log in the register” late (due Thu 24 Dec 2026, 10:00)" in html
