"""One complaint through every user task to closure, in the browser, with the data of
processes/tests/01_minor_happy_path.json.

Its `advance` steps only move the scenario clock; none of the tasks up to closure waits
for a timer. The last step (check_corrective_action) comes from a 30-day timer, which
needs `complaints worker` with a moved clock: it is left out here.
"""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

from playwright.sync_api import expect

from engine.settings import PROJECT_ROOT
from tests.browser.test_browser import open_task, record_complaint, unique

SCENARIO = PROJECT_ROOT / "processes" / "tests" / "01_minor_happy_path.json"
USERS = {"staff": "sam.staff", "operations_director": "olive.ops",
         "complaint_owner": "owen.owner", "quality_manager": "quinn.quality"}
TIMER_TASKS = {"check_corrective_action"}


def task_titles() -> dict[str, str]:
    """{user task id: its name} from the BPMN files: the titles the inbox shows."""
    titles = {}
    for path in (PROJECT_ROOT / "processes").glob("*.bpmn"):
        for element in ElementTree.parse(path).iter():
            if element.tag.endswith("}userTask") and element.get("name"):
                titles[element.get("id")] = " ".join(element.get("name").split())
    return titles


def fill(page, name: str, value) -> None:
    """Set the task form control called `name` to `value`, whatever kind of control it is."""
    controls = page.locator(f"form [name='{name}']")
    kind = controls.first.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    text = (str(value).lower() if isinstance(value, bool)
            else "" if value is None else str(value))
    if kind == "input:radio":
        page.check(f"form [name='{name}'][value='{text}']")
    elif kind == "input:checkbox":
        controls.first.set_checked(bool(value))
    elif kind.startswith("select"):
        controls.first.select_option(text)
    else:
        controls.first.fill(text)


def test_minor_complaint_through_every_task_to_closure(as_user, shot):
    scenario = json.loads(SCENARIO.read_text())

    recorder = as_user("sam.staff")
    summary = unique(scenario["start"]["summary"])
    reference = record_complaint(recorder, summary)

    titles = task_titles()
    done = []
    for step in scenario["steps"]:
        if "task" not in step or step["task"] in TIMER_TASKS:
            continue
        title = titles[step["task"]]
        page = as_user(step.get("expect_assignee") or USERS[step["expect_role"]])
        open_task(page, reference, title)
        for name, value in step["data"].items():
            fill(page, name, value)
        page.click("form button:has-text('Complete the task')")
        expect(page).to_have_url(re.compile(r"/inbox"), timeout=15_000)
        done.append(step["task"])
        shot(page, f"{len(done):02d}-{step['task']}")

    quality = as_user("quinn.quality")
    quality.goto(f"/complaints/{reference}")
    expect(quality.locator("main")).to_contain_text(summary)
    status = quality.locator("dt:text-is('Status') + dd").first
    expect(status).to_have_text("closed")
    shot(quality, "closed-case")
    assert done[-1] == "close_complaint"
