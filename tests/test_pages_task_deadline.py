"""The task page shows the task's due time in Europe/London, with the weekday, and its state
(on time, due soon, overdue) by the one rule of engine.deadlines.

Runs on SQLite and (when configured) PostgreSQL, on the process of test_pages_inbox.
"""

from __future__ import annotations

import re

from . import test_pages_inbox as shared
from .conftest import LONDON
from .test_pages_inbox import complete, csrf_token, record, sign_in, task_of

db = shared.db
app = shared.app
client = shared.client


def due_line(client, task_id) -> str:
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    line = page.split('<p class="due">', 1)[1].split("</p>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", line).split())


def test_the_due_time_is_london_time_with_weekday_and_state(db, client, manual_clock):
    # Received Wednesday 1 July 2026 09:00 UTC (10:00 BST): logged by Thursday 10:00 BST,
    # long past on the test clock (December 2026).
    late = record(db, received_at="2026-07-01T09:00:00+00:00")
    sign_in(client, "sam")
    assert due_line(client, task_of(db, late, "log").id) == \
        "Due Thu 02 Jul 2026, 10:00 (Europe/London): overdue"

    task = task_of(db, record(db), "log")  # received now
    allowed = task.due_at - task.created_at
    local = task.due_at.astimezone(LONDON).strftime("%a %d %b %Y, %H:%M")
    assert due_line(client, task.id) == f"Due {local} (Europe/London): on time"
    manual_clock.set(task.created_at + allowed * 0.79)
    assert due_line(client, task.id).endswith(": on time")
    manual_clock.set(task.created_at + allowed * 0.81)
    assert due_line(client, task.id).endswith(": due soon")
    manual_clock.set(task.due_at)
    assert due_line(client, task.id).endswith(": overdue")


def test_a_done_task_shows_no_state_and_a_task_without_due_time_says_so(db, client):
    complaint = record(db)
    task = task_of(db, complaint, "log")
    complete(db, complaint, "log", {"owner": "owen", "personal_data_involved": False})
    sign_in(client, "sam")
    line = due_line(client, task.id)
    assert line.startswith("Due ") and not line.endswith(("on time", "due soon", "overdue"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/inbox")})
    sign_in(client, "quinn")
    assert due_line(client, task_of(db, complaint, "classify").id) == "No due time"
