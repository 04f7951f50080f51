"""The inbox pages through many tasks in SQL: a count, page links that keep the sort and
the filters, and state filters that agree with the labels.

Runs on SQLite and (when configured) PostgreSQL. The tasks are projection rows of one
instance of a made-up process (the inbox reads nothing else), so a few hundred are cheap.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

from engine import clock
from engine.db import unit_of_work
from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from web.inbox import PAGE_SIZE, time_state

from . import test_pages_inbox as shared
from .test_pages_inbox import inbox, rows, sign_in

db = shared.db
app = shared.app
client = shared.client

COUNT = 260  # more than five pages


def add_tasks(db, specs) -> None:
    """``specs``: dicts of HumanTask columns (title required) for ready tasks of one
    running instance."""
    now = datetime.now(UTC)
    with unit_of_work(db) as uow:
        definition = ProcessDefinition(
            process_id="bulk_review", version=1, name="Bulk review", sha256="1" * 64,
            sources={}, specs_json="{}", user_tasks=[], deployed_at=now)
        instance = ProcessInstance(definition=definition, process_id="bulk_review",
                                   status="running", state="", created_at=now, updated_at=now)
        uow.session.add(instance)
        uow.session.flush()
        for spec in specs:
            values = {"role": "staff", "state": "ready", "created_at": now, **spec}
            uow.session.add(HumanTask(id=str(uuid.uuid4()), instance_id=instance.id,
                                      bpmn_id="review", **values))


def titles(page: str) -> list[str]:
    return re.findall(r"(Review item \d{3})", " ".join(rows(page)))


def links(page: str) -> dict[str, str]:
    """The paging links: text -> href (unescaped)."""
    nav = page.split('<nav class="paging"', 1)[1].split("</nav>", 1)[0]
    return {text: html.unescape(href)
            for href, text in re.findall(r'<a[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', nav)}


def test_page_two_shows_the_next_tasks_in_due_order_with_a_count(db, client, manual_clock):
    start = clock.now()
    # Created in reverse order, due in title order: item 000 is due first.
    add_tasks(db, [{"title": f"Review item {n:03d}",
                    "created_at": start - timedelta(minutes=n),
                    "due_at": start + timedelta(days=3, minutes=n)} for n in range(COUNT)])
    sign_in(client, "sam")

    first = inbox(client)
    assert f"{COUNT} tasks; showing 1 to {PAGE_SIZE} (page 1 of 6)." in first
    assert titles(first) == [f"Review item {n:03d}" for n in range(PAGE_SIZE)]

    second = inbox(client, page=2)
    assert f"showing {PAGE_SIZE + 1} to {2 * PAGE_SIZE} (page 2 of 6)" in second
    assert titles(second) == [f"Review item {n:03d}" for n in range(PAGE_SIZE, 2 * PAGE_SIZE)]
    assert '<span aria-current="page">2</span>' in second

    last = inbox(client, page=6)
    assert titles(last) == [f"Review item {n:03d}" for n in range(5 * PAGE_SIZE, COUNT)]
    assert "Next" not in links(last)
    # Beyond the end (tasks done meanwhile) is the last page, not an empty one.
    assert titles(inbox(client, page=99)) == titles(last)
    assert titles(inbox(client, page="nonsense")) == titles(first)


def test_sort_and_filters_survive_paging(db, client, manual_clock):
    start = clock.now()
    specs = []
    for n in range(COUNT):
        specs.append({"title": f"Review item {n:03d}",
                      # created in title order; due in reverse title order
                      "created_at": start - timedelta(minutes=COUNT - n),
                      "due_at": start + timedelta(days=5, minutes=COUNT - n),
                      # every third task is claimed by someone else
                      "claimed_by": "sue" if n % 3 == 0 else None})
    add_tasks(db, specs)
    sign_in(client, "sam")

    unclaimed = [f"Review item {n:03d}" for n in range(COUNT) if n % 3]
    page1 = inbox(client, sort="created", state="unclaimed", q="item")
    assert f"{len(unclaimed)} tasks match these filters" in page1
    assert titles(page1) == unclaimed[:PAGE_SIZE]

    nav = links(page1)
    assert "Previous" not in nav
    next_url = nav["Next"]
    assert "sort=created" in next_url and "state=unclaimed" in next_url
    assert "q=item" in next_url and "page=2" in next_url
    page2 = client.get(next_url).get_data(as_text=True)
    assert titles(page2) == unclaimed[PAGE_SIZE:2 * PAGE_SIZE]
    assert "Claimed by sue" not in page2
    # The form keeps the choices, and the claim buttons come back to this page.
    assert '<option value="created" selected>' in page2
    assert '<option value="unclaimed" selected>' in page2
    assert 'name="next" value="/inbox?' in page2 and "page=2" in page2
    assert links(page2)["Previous"].endswith("/inbox?q=item&state=unclaimed&sort=created")

    # Sorted by due time the order reverses, across pages too.
    by_due = inbox(client, sort="due", page=2)
    assert titles(by_due) == [f"Review item {n:03d}" for n in
                              range(COUNT - 1, -1, -1)][PAGE_SIZE:2 * PAGE_SIZE]


def test_state_filters_in_sql_agree_with_the_labels(db, client, manual_clock):
    now = clock.now()
    hour = timedelta(hours=1)
    # (title, created hours ago, due in hours): the share of the time used decides.
    cases = [
        ("Review item 001", 10, -1),    # overdue
        ("Review item 002", 10, 0),     # due now: overdue
        ("Review item 003", 81, 19),    # 81% used: due soon
        ("Review item 004", 79, 21),    # 79% used: on time
        ("Review item 005", 80, 20),    # exactly 80%: due soon
        ("Review item 006", 1, 1000),   # on time
        ("Review item 007", 0, None),   # no due time
    ]
    add_tasks(db, [{"title": title, "created_at": now - ago * hour,
                    "due_at": None if due is None else now + due * hour}
                   for title, ago, due in cases])
    sign_in(client, "sam")

    def expected(which: int) -> list[str]:
        out = []
        for title, ago, due in cases:
            task = HumanTask(created_at=now - ago * hour,
                             due_at=None if due is None else now + due * hour)
            if time_state(task, now)[which]:
                out.append(title)
        return out

    assert expected(0) == ["Review item 001", "Review item 002"]
    assert expected(1) == ["Review item 003", "Review item 005"]
    assert sorted(titles(inbox(client, state="overdue"))) == expected(0)
    assert sorted(titles(inbox(client, state="due_soon"))) == expected(1)
    page = inbox(client, state="due_soon")
    assert "2 tasks match these filters." in page
    assert all("Due soon" in row for row in rows(page))
