"""Evidence in the browser: the Complaint Owner attaches a file while investigating; a file
of a type that cannot be kept is refused at its field with the other answers kept; the
case page lists the kept file and it downloads.

The tasks before the investigation are done with the data of
processes/tests/01_minor_happy_path.json, as in test_closure.py.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.browser.test_browser import open_task, record_complaint, unique
from tests.browser.test_closure import SCENARIO, USERS, fill, task_titles

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_the_owner_attaches_evidence_while_investigating(as_user, shot):
    scenario = json.loads(SCENARIO.read_text())

    reference = record_complaint(as_user("sam.staff"), unique("Evidence of missed visits"))
    titles = task_titles()
    for step in scenario["steps"]:
        if step.get("task") == "investigate_complaint":
            investigation = step
            break
        if "task" not in step:
            continue
        page = as_user(step.get("expect_assignee") or USERS[step["expect_role"]])
        open_task(page, reference, titles[step["task"]])
        for name, value in step["data"].items():
            fill(page, name, value)
        page.click("form button:has-text('Complete the task')")
        expect(page).to_have_url(re.compile(r"/inbox"))

    owner = as_user("owen.owner")
    open_task(owner, reference, titles["investigate_complaint"])
    file_input = owner.locator("input[type=file][name=evidence_files]")
    expect(file_input).to_be_visible()
    expect(owner.get_by_label("Evidence files (optional)")).to_have_count(1)
    for name, value in investigation["data"].items():
        fill(owner, name, value)

    # A program is not evidence the store keeps: refused at the field, answers kept.
    file_input.set_input_files([{"name": "setup.exe", "mimeType": "application/x-msdownload",
                                 "buffer": b"MZ\x90\x00 not evidence"}])
    owner.click("form button:has-text('Complete the task')")
    error = owner.locator("#f-evidence_files-error")
    expect(error).to_contain_text("setup.exe is not a file type that can be kept")
    expect(owner.locator(".error-summary")).to_contain_text("Evidence files")
    expect(owner.locator("[name=evidence_reviewed]")).to_have_value(
        investigation["data"]["evidence_reviewed"])
    shot(owner, "evidence-refused")

    owner.locator("input[type=file][name=evidence_files]").set_input_files([
        {"name": "job-sheet.png", "mimeType": "image/png", "buffer": PNG},
        {"name": "call-log.txt", "mimeType": "text/plain", "buffer": b"09:00 no answer"}])
    owner.click("form button:has-text('Complete the task')")
    expect(owner).to_have_url(re.compile(r"/inbox"))

    owner.goto(f"/complaints/{reference}")
    documents = owner.locator("section[aria-labelledby=documents-heading]")
    expect(documents.locator("tbody tr")).to_have_count(2)
    expect(documents).to_contain_text("job-sheet.png")
    expect(documents).to_contain_text("call-log.txt")
    shot(owner, "case-documents")
    with owner.expect_download() as info:
        documents.get_by_role("link", name="call-log.txt").click()
    download = info.value
    assert download.suggested_filename == "call-log.txt"
    with open(download.path(), "rb") as saved:
        assert saved.read() == b"09:00 no answer"
