"""The instance inspector in a real headless Chromium: the bpmn-js viewer marks the
active task of a running case (issue 6, part 8)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.test_browser import REGISTER_TITLE, record_complaint, sign_in, unique


def test_the_inspector_marks_the_active_task_of_a_running_case(new_context, shot):
    staff = new_context().new_page()
    sign_in(staff, "sam.staff")
    reference = record_complaint(staff, unique("Engineer never came"))

    page = new_context().new_page()
    sign_in(page, "ada.admin")
    page.goto("/admin/instances?status=running")
    row = page.locator("table.instances tbody tr", has_text=reference)
    expect(row).to_have_count(1)
    row.get_by_role("link").first.click()
    expect(page.locator("h1")).to_contain_text("complaint_handling")
    expect(page.locator("#instance-status")).to_have_text("running")

    inspector = page.locator("#inspector")
    expect(inspector).to_have_attribute("data-ready", "1")
    # The case waits in the receipt-and-logging subprocess: its diagram opens first.
    expect(inspector).to_have_attribute("data-shown", "receipt_and_logging")
    task = page.locator('g.djs-element[data-element-id="complete_register_record"]')
    expect(task).to_have_class(re.compile(r"\binspector-active\b"))
    start = page.locator('g.djs-element[data-element-id="complaint_received"]')
    expect(start).to_have_class(re.compile(r"\binspector-completed\b"))
    expect(page.locator("#inspector-status")).to_contain_text("1 active")
    expect(page.get_by_role("rowheader", name=re.compile(REGISTER_TITLE))).to_be_visible()
    shot(page, "subprocess")

    # The main process shows the call activity it waits in as active.
    page.select_option("#inspector-process", label="complaint_handling (complaint_handling.bpmn)")
    expect(inspector).to_have_attribute("data-shown", "complaint_handling")
    call = page.locator('g.djs-element[data-element-id="call_receipt_and_logging"]')
    expect(call).to_have_class(re.compile(r"\binspector-active\b"))
    shot(page, "main-process")
