"""The web pages in a real headless Chromium against a real `complaints serve`."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD

REFERENCE = re.compile(r"CMP-\d{4}-\d{6}")
REGISTER_TITLE = "Complete the register record"


def sign_in(page, username: str) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def record_complaint(page, summary: str, personal_data: bool = False) -> str:
    """Record a telephone complaint at /complaints/new (signed in as staff); its reference."""
    page.goto("/complaints/new")
    page.select_option("#f-channel", "telephone")
    page.fill("#f-complainant-name", "Alex Morgan")
    page.fill("#f-complainant-phone", "01632 960123")
    page.fill("#f-summary", summary)
    page.fill("#f-description", "Nobody came to either installation appointment.")
    page.fill("#f-product-or-service", "Home broadband installation")
    if personal_data:
        page.check("#f-personal-data-involved")
    page.click("main form button[type=submit], form[action$='/complaints/new'] button")
    heading = page.locator("#recorded-heading")
    expect(heading).to_contain_text("recorded")
    return REFERENCE.search(heading.inner_text()).group(0)


def open_task(page, reference: str, title: str):
    """Find the task `title` of the case `reference` in the inbox and open it."""
    page.goto(f"/inbox?q={reference}")
    row = page.locator("table.inbox tbody tr", has_text=reference).filter(has_text=title)
    expect(row).to_have_count(1)
    row.get_by_role("link", name=title).click()
    expect(page.locator("h1")).to_contain_text(title)
    expect(page.locator("h1 .case")).to_have_text(reference)
    return page


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def test_sign_in_and_a_wrong_password(page, shot):
    page.goto("/login")
    shot(page, "login")
    page.fill("#username", "sam.staff")
    page.fill("#password", "not-the-password")
    page.click("form.stacked button[type=submit]")
    error = page.locator("p.error[role=alert]")
    expect(error).to_be_visible()
    expect(page.locator("#username")).to_have_value("sam.staff")
    shot(page, "login-error")

    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))
    expect(page.locator("body")).to_contain_text("sam.staff")
    shot(page, "signed-in")


def test_record_a_telephone_complaint_and_open_its_first_task(page, shot):
    sign_in(page, "sam.staff")
    page.goto("/complaints/new")
    shot(page, "intake")
    summary = unique("Engineer missed two appointments")
    reference = record_complaint(page, summary)
    expect(page.locator("section.messages strong")).to_have_text(reference)
    shot(page, "intake-recorded")

    page.goto("/inbox")
    shot(page, "inbox")
    open_task(page, reference, REGISTER_TITLE)
    expect(page.locator(".case-context")).to_contain_text(summary)
    shot(page, "task")


def test_task_form_error_keeps_typed_values_then_next_task_appears(page, shot):
    sign_in(page, "sam.staff")
    reference = record_complaint(page, unique("Router never delivered"))
    open_task(page, reference, REGISTER_TITLE)

    # The required tick box is left empty; a changed field must survive the error.
    page.fill("#f-remedy_sought", "A refund of the first month")
    page.uncheck("#f-record_checked")
    page.click("form button:has-text('Complete the task')")
    expect(page.locator(".error-summary")).to_be_visible()
    field = page.locator(".field-has-error", has=page.locator("#f-record_checked"))
    expect(field.locator("p.error")).to_be_visible()
    expect(page.locator("#f-record_checked")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-remedy_sought")).to_have_value("A refund of the first month")
    shot(page, "task-error")

    page.check("#f-record_checked")
    page.click("form button:has-text('Complete the task')")
    expect(page).to_have_url(re.compile(r"/inbox"))
    expect(page.locator("body")).to_contain_text("Task completed")
    open_task(page, reference, "Send the acknowledgement")
    shot(page, "next-task")


def test_public_complaint_form_end_to_end(page, shot):
    page.goto("/complain")
    shot(page, "complain")
    page.fill("#f-name", "Jo Public")
    page.fill("#f-email", "jo.public@example.com")
    page.fill("#f-summary", "Parcel arrived damaged")
    page.fill("#f-description", "The box was crushed and the kettle inside is dented.")
    page.click("form[action$='/complain'] button[type=submit]")
    expect(page.locator("h1")).to_contain_text("we have received your complaint")
    reference = page.locator("main strong, strong").first.inner_text()
    assert REFERENCE.fullmatch(reference), reference
    shot(page, "complain-done")


def test_need_to_know_case_is_hidden_from_unrelated_staff(new_context, shot):
    recorder = new_context().new_page()
    sign_in(recorder, "sam.staff")
    summary = unique("Letter sent to the wrong address")
    reference = record_complaint(recorder, summary, personal_data=True)

    other = new_context().new_page()
    sign_in(other, "owen.owner")
    other.goto(f"/register?q={reference}")
    expect(other.locator("h1")).to_have_text("Complaints Register")
    expect(other.locator("main")).not_to_contain_text(reference)
    shot(other, "register-unrelated")
    response = other.goto(f"/complaints/{reference}")
    assert response.status == 404
    shot(other, "case-404")

    quality = new_context().new_page()
    sign_in(quality, "quinn.quality")
    quality.goto(f"/register?q={reference}")
    expect(quality.locator("main")).to_contain_text(reference)
    shot(quality, "register-quality")
    response = quality.goto(f"/complaints/{reference}")
    assert response.status == 200
    expect(quality.locator("main")).to_contain_text(summary)
    shot(quality, "case")


def test_second_submission_of_the_same_task_is_told_it_is_already_completed(new_context,
                                                                             shot):
    first = new_context().new_page()
    sign_in(first, "sam.staff")
    reference = record_complaint(first, unique("Bill charged twice"))
    open_task(first, reference, REGISTER_TITLE)
    second = new_context().new_page()
    sign_in(second, "olive.ops")
    open_task(second, reference, REGISTER_TITLE)

    for page in (first, second):
        page.check("#f-record_checked")
    second.fill("#f-remedy_sought", "Refund the second charge")
    first.click("form button:has-text('Complete the task')")
    expect(first).to_have_url(re.compile(r"/inbox"))

    second.click("form button:has-text('Complete the task')")
    problem = second.locator(".problem[role=alert]")
    expect(problem).to_contain_text("This task is no longer open: it was completed by sam.staff")
    expect(second.locator("#f-remedy_sought")).to_have_value("Refund the second charge")
    shot(second, "already-completed")
