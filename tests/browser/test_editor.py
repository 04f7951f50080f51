"""The process editor in the browser (issue 6): a process owner changes the acknowledgement
deadline from 3 to 2 working days, sees the scenario tests show it, deploys it with a
note, and new complaints get the new deadline while an open one keeps its own.

Runs its own `complaints serve` on its own database (module scope), because deploying
new versions would change what the other browser tests see.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from engine.calendar import BusinessCalendar, parse_instant
from engine.models import Complaint, ProcessDefinition, ProcessInstance
from engine.settings import PROJECT_ROOT
from tests.browser.conftest import _require_chromium, served_database
from tests.browser.test_browser import open_task, record_complaint, sign_in, unique
from tests.test_drafts import scenario_counts

MIWG = PROJECT_ROOT / "tests" / "fixtures" / "miwg" / "A.2.0.bpmn"
SCRIPT_TASK = "set_logging_deadlines"
NOTE = ("The acknowledgement deadline is now 2 working days (was 3): the 2027 policy "
        "shortens it so complainants hear from us sooner.")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, database URL) of a server of its own."""
    _require_chromium()
    with served_database(tmp_path_factory.mktemp("editor"), "editor-browser-test-key") as (
            served):
        yield served


@pytest.fixture
def browser_page(chromium, server):
    contexts = []

    def make():
        context = chromium.new_context(base_url=server[0], viewport={"width": 1600,
                                                                      "height": 1000})
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def open_editor(page, process_id="complaint_handling"):
    page.goto(f"/definitions/{process_id}/edit")
    if page.locator("#open-draft").count():
        page.click("#open-draft")
    expect(page.locator("#editor")).to_have_attribute("data-loaded", "true")


def show_diagram(page, name):
    page.select_option("#file-select", name)
    expect(page.locator("#status")).to_contain_text(f"Showing {name}")


def select_element(page, element_id):
    """Click the element on the diagram, unless it is selected already (in bpmn-js a click
    on the selected element deselects it)."""
    shape = page.locator(f'g.djs-element.selected[data-element-id="{element_id}"]')
    if not shape.count():
        page.locator(f'g.djs-element[data-element-id="{element_id}"]').first.click()
    expect(page.locator("#properties .element-kind")).to_contain_text(element_id)


def acknowledge_by(db_url, reference) -> tuple[str, str, int]:
    """(received_at, acknowledge_by, definition version) of a complaint, from the database."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            complaint = session.scalars(
                select(Complaint).where(Complaint.reference == reference)).one()
            version = session.scalar(
                select(ProcessDefinition.version)
                .join(ProcessInstance, ProcessInstance.definition_id == ProcessDefinition.id)
                .where(ProcessInstance.id == complaint.instance_id))
            return (complaint.received_at, complaint.deadlines["acknowledge_by"], version)
    finally:
        engine.dispose()


def business_days_later(received_at, days):
    return BusinessCalendar("GB-ENG").add_business_days(received_at, days)


def case_acknowledge_by(page, reference) -> str:
    page.goto(f"/complaints/{reference}")
    row = page.locator("table.deadlines tbody tr", has_text="cknowledge")
    return row.first.inner_text()


def test_a_process_owner_changes_the_acknowledgement_deadline_and_deploys_it(
        browser_page, server, shot):
    base_url, db_url = server
    staff = browser_page()
    sign_in(staff, "sam.staff")
    older = record_complaint(staff, unique("Engineer missed the appointment"))
    old_received, old_due, old_version = acknowledge_by(db_url, older)
    assert old_version == 1
    assert parse_instant(old_due) == business_days_later(old_received, 3)

    page = browser_page()
    sign_in(page, "paul.process")
    open_editor(page)
    assert page.locator("#canvas g.djs-element").count() > 10
    shot(page, "opened")

    # Rename a task and add a timer to it.
    show_diagram(page, "receipt_and_logging.bpmn")
    select_element(page, "complete_register_record")
    page.fill("#properties [data-property=name]", "Complete and check the register record")
    page.click("#add-timer")
    expect(page.locator("#properties .element-kind")).to_contain_text("BoundaryEvent")
    page.fill("#properties [data-property=timer]", '"P30D"')

    # The deadline: 2 working days instead of 3, in the script that sets the deadlines.
    select_element(page, SCRIPT_TASK)
    script = page.locator("#properties [data-property=script]")
    text = script.input_value()
    assert "add_business_days(received_at, 3)" in text
    script.fill(text.replace('"acknowledge_by": add_business_days(received_at, 3)',
                             '"acknowledge_by": add_business_days(received_at, 2)'))
    page.click("#save")
    expect(page.locator("#status")).to_have_text("Saved.")

    # A broken gateway: without its default, the "No" way out has no condition.
    show_diagram(page, "complaint_handling.bpmn")
    select_element(page, "sensitive_information")
    page.select_option("#properties [data-property=default]", "")
    page.click("#validate")
    expect(page.locator("#problems-summary")).to_contain_text("problem")
    problem = page.locator('#problems li[data-element-id="no_sensitive_information"]')
    expect(problem).to_contain_text("with no condition and the gateway has no default")
    marked = page.locator('g.djs-element.has-problem[data-element-id="no_sensitive_information"]')
    expect(marked).to_have_count(1)
    shot(page, "validation-failed")

    # Deploying it now is refused.
    page.click("#review")
    page.fill("#change-note", NOTE)
    page.click("#deploy")
    expect(page.locator("#deploy-result")).to_contain_text("Not deployed")

    # Fix it: the problem leads to the flow, which becomes the default way out again.
    problem.get_by_role("button").click()
    expect(page.locator("#properties .element-kind")).to_contain_text("no_sensitive_information")
    page.check("#properties [data-property=isDefault]")
    page.click("#validate")
    expect(page.locator("#problems-summary")).to_contain_text("No problems")
    expect(marked).to_have_count(0)

    # The scenarios show the change: their expected acknowledgement deadlines are a day late.
    page.click("#run-scenarios")
    expect(page.locator("#scenarios-summary")).to_contain_text("failed")
    change = page.locator("#scenarios li.deadline-change").first
    expect(change).to_contain_text("acknowledge_by")
    expect(change).to_contain_text("the scenario expects Thu 24 Dec 2026, 14:30")
    expect(change).to_contain_text("the draft gives Wed 23 Dec 2026, 14:30")
    shot(page, "scenarios-show-the-change")
    page.click("#accept-all-deadlines")
    expect(page.locator("#scenarios-summary")).to_have_text(
        f"{scenario_counts()[0]} passed, 0 failed")

    # The difference, then deploy with a note (a note is required).
    page.click("#review")
    diff = page.locator("#diff")
    expect(diff.locator(f'tr[data-element-id="{SCRIPT_TASK}"]')).to_contain_text(
        "add_business_days(received_at, 2)")
    expect(diff.locator('tr[data-element-id="complete_register_record"]')).to_contain_text(
        "Complete and check the register record")
    expect(diff.locator("tr.change-added", has_text="timers")).to_contain_text('"P30D"')
    expect(diff.locator("tr", has_text="tests/01_minor_happy_path.json")).to_have_count(1)
    shot(page, "difference")
    page.fill("#change-note", "")
    page.click("#deploy")
    expect(page.locator("#deploy-result")).to_contain_text("change note")
    page.fill("#change-note", NOTE)
    page.click("#deploy")
    expect(page.locator("#deploy-result")).to_contain_text("complaint_handling v2")
    expect(page.locator("#deploy-result")).to_contain_text("receipt_and_logging v2")
    shot(page, "deployed")
    page.get_by_role("link", name="See the versions of this process").click()
    expect(page.locator("main")).to_contain_text(NOTE)

    # New complaints get 2 working days, on version 2; the open one keeps 3, on version 1.
    newer = record_complaint(staff, unique("Router arrived broken"))
    new_received, new_due, new_version = acknowledge_by(db_url, newer)
    assert new_version == 2
    assert parse_instant(new_due) == business_days_later(new_received, 2)
    assert acknowledge_by(db_url, older)[1:] == (old_due, 1)

    # The older case goes on, on its own version, with its own deadline.
    open_task(staff, older, "Complete the register record")
    staff.check("#f-record_checked")
    staff.click("form button:has-text('Complete the task')")
    expect(staff.locator("main")).not_to_contain_text("There is a problem")
    assert acknowledge_by(db_url, older)[1:] == (old_due, 1)
    open_task(staff, newer, "Complete and check the register record")
    assert parse_instant(old_due) != parse_instant(new_due)
    shown_old, shown_new = case_acknowledge_by(staff, older), case_acknowledge_by(staff, newer)
    assert shown_old != shown_new
    shot(staff, "new-case")


def test_files_from_other_modelling_tools_render_with_their_problems(browser_page, shot):
    page = browser_page()
    sign_in(page, "paul.process")
    open_editor(page, "acknowledgement")
    for path in sorted(MIWG.parent.glob("*.bpmn")):
        page.set_input_files("#import-file", str(path))
        page.click("#import-form button[type=submit]")
        expect(page.locator("#status")).to_contain_text(f"Showing {path.name}")
        expect(page.locator("#file-select")).to_have_value(path.name)
        assert page.locator("#canvas g.djs-element.djs-shape").count() > 3, path.name
        box = page.locator("#canvas .djs-container svg .viewport").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, (path.name, box)
        listed = page.locator(f'#problems li[data-file="{path.name}"]')
        expect(listed.first).to_contain_text("no executable process")
        expect(listed.nth(1)).to_contain_text("if it were executable")
        if path == MIWG:
            shot(page, "miwg")
            # A.2.0: the split gateway's flows have no conditions; each is listed and marked.
            flows = page.locator(f'#problems li[data-file="{path.name}"]',
                                 has_text="with no condition")
            expect(flows).to_have_count(3)
            flow = flows.first.get_attribute("data-element-id")
            expect(page.locator(f'g.djs-element.has-problem[data-element-id="{flow}"]')
                   ).to_have_count(1)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#remove-file")
        expect(page.locator("#status")).to_contain_text("removed from the draft")
    page.click("#discard")
    expect(page.locator("#open-draft")).to_be_visible()


def test_a_form_is_edited_beside_its_live_preview_and_validated(browser_page, shot):
    page = browser_page()
    sign_in(page, "paul.process")
    open_editor(page, "acknowledgement")
    # The task's properties lead to its form.
    select_element(page, "send_acknowledgement")
    expect(page.locator("#properties [data-property=formJsonSchemaFilename]")).to_have_value(
        "send_acknowledgement.json")
    page.click("#properties button:has-text('Edit this form')")
    expect(page.locator("#text-file-select")).to_have_value("forms/send_acknowledgement.json")
    preview = page.locator("#form-preview")
    expect(preview).to_contain_text("How did you send it?")

    editor = page.locator("#text-file")
    text = editor.input_value()
    editor.fill(text.replace("How did you send it?", "Which channel did you use?"))
    expect(preview).to_contain_text("Which channel did you use?")
    shot(page, "form-preview")

    editor.fill(text.replace('"type": "object"', '"type": "objekt"', 1))
    expect(page.locator("#form-preview-problems")).to_contain_text("not a valid JSON Schema")
    page.click("#validate")
    expect(page.locator('#problems li[data-file="forms/send_acknowledgement.json"]')
           ).to_contain_text("not a valid JSON Schema")

    editor.fill(text.replace("How did you send it?", "Which channel did you use?"))
    page.click("#validate")
    expect(page.locator("#problems-summary")).to_contain_text("No problems")
    page.click("#review")
    expect(page.locator("#diff tr", has_text="forms/send_acknowledgement.json")).to_contain_text(
        "Which channel did you use?")

    # Who does it: choosing another lane moves the task into it.
    select_element(page, "send_acknowledgement")
    page.select_option("#properties [data-property=lane]", "lane_quality_manager")
    page.click("#review")
    expect(page.locator('#diff tr[data-element-id="send_acknowledgement"]')).to_contain_text(
        "lane: Staff → Quality Manager")

    # A new form for a task: named in its properties, created in the draft, validated.
    select_element(page, "send_acknowledgement")
    page.fill("#properties [data-property=formJsonSchemaFilename]", "acknowledgement_note.json")
    page.click("#edit-form")
    expect(page.locator("#text-file-select")).to_have_value("forms/acknowledgement_note.json")
    editor.fill('{"type": "object", "properties": {"note": {"type": "string", '
                '"title": "A note for the file"}}, "additionalProperties": false}')
    expect(preview).to_contain_text("A note for the file")
    page.click("#validate")
    expect(page.locator("#problems-summary")).to_contain_text("No problems")
    page.click("#discard")
    expect(page.locator("#open-draft")).to_be_visible()


def test_a_stage_says_where_to_edit_it_for_new_complaints(browser_page):
    page = browser_page()
    sign_in(page, "paul.process")
    page.goto("/definitions/receipt_and_logging/edit")
    expect(page.locator("#included-in")).to_contain_text("complaint_handling")
