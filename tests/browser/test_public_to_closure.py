"""Issue 4, "Done when": every demo user of `make run` signs in and finds their pages, and a
complaint sent through the public form is taken to closure using only the browser.

The tasks are done with the data of processes/tests/01_minor_happy_path.json, as in
test_closure.py (whose helpers this reuses), but the complaint starts at /complain.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from engine.demo import DEMO_USERS
from tests.browser.test_browser import REFERENCE, open_task, sign_in, unique
from tests.browser.test_closure import SCENARIO, TIMER_TASKS, USERS, fill, task_titles


def test_every_demo_user_signs_in_and_sees_their_pages(new_context):
    for username, _roles in DEMO_USERS:
        page = new_context().new_page()
        sign_in(page, username)
        for path in ("/", "/inbox", "/register"):
            response = page.goto(path)
            assert response.status == 200, (username, path, response.status)
            expect(page.locator("header.site")).to_contain_text(username)


def test_a_complaint_from_the_public_form_to_closure(new_context, as_user, shot):
    scenario = json.loads(SCENARIO.read_text())
    public = new_context().new_page()
    public.goto("/complain")
    summary = unique("Engineer missed two appointments")
    public.fill("#f-name", "Alex Morgan")
    public.fill("#f-email", "alex.morgan@example.com")
    public.fill("#f-summary", summary)
    public.fill("#f-description", "Nobody came to either installation appointment.")
    public.click("form[action$='/complain'] button[type=submit]")
    expect(public.locator("h1")).to_contain_text("we have received your complaint")
    reference = REFERENCE.search(public.locator("main").inner_text()).group(0)


    titles = task_titles()
    done = []
    for step in scenario["steps"]:
        if "task" not in step or step["task"] in TIMER_TASKS:
            continue
        page = as_user(step.get("expect_assignee") or USERS[step["expect_role"]])
        open_task(page, reference, titles[step["task"]])
        for name, value in step["data"].items():
            fill(page, name, value)
        page.click("form button:has-text('Complete the task')")
        expect(page).to_have_url(re.compile(r"/inbox"))
        done.append(step["task"])

    assert done[-1] == "close_complaint"
    quality = as_user("quinn.quality")
    quality.goto(f"/complaints/{reference}")
    expect(quality.locator("dt:text-is('Status') + dd").first).to_have_text("closed")
    expect(quality.locator("dt:text-is('Channel') + dd").first).to_have_text("website")
    shot(quality, "closed-public-case")
