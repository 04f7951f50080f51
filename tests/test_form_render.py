"""Server-rendered task forms: every real form renders, and submissions read back typed."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import render_template_string
from werkzeug.datastructures import MultiDict

from engine.errors import InvalidData
from engine.forms import check_form_data, form_source_key
from web import create_app
from web.form_render import (
    KINDS,
    Field,
    fields_for,
    fill_values,
    instant_to_local,
    local_to_instant,
    parse_submission,
    validate,
    values_from_data,
)

FORMS = Path(__file__).resolve().parent.parent / "forms"
FORM_NAMES = sorted(p.name for p in FORMS.glob("*.json") if not p.name.endswith(".ui.json"))
MACRO = (
    '{% from "form_fields.html" import render_fields %}{{ render_fields(fields, errors, values) }}'
)


def load(name: str) -> tuple[dict, dict | None]:
    schema = json.loads((FORMS / name).read_text())
    ui_path = FORMS / name.replace(".json", ".ui.json")
    ui = json.loads(ui_path.read_text()) if ui_path.exists() else None
    return schema, ui


def sources_for(name: str) -> dict[str, str]:
    return {form_source_key(name): (FORMS / name).read_text()}


@pytest.fixture(scope="module")
def app():
    return create_app({"SECRET_KEY": "x", "TESTING": True})


def render(app, fields, errors=None, values=None) -> str:
    with app.test_request_context():
        return render_template_string(
            MACRO, fields=fields, errors=errors or {}, values=values or {}
        )


class Page(HTMLParser):
    """Collects the controls, the labels' targets and the ids of an HTML fragment."""

    def __init__(self, html: str):
        super().__init__()
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.legends = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **a})
        if tag == "label" and "for" in a:
            self.label_for.add(a["for"])
        if tag == "legend":
            self.legends += 1


def leaves(fields) -> list[Field]:
    return [f for top in fields for f in top.walk() if f.kind != "group"]


def typical_values(fields) -> MultiDict:
    """A filled-in submission: every field given a plausible value."""
    form = MultiDict([("csrf_token", "token-is-ignored")])
    for f in leaves(fields):
        if f.kind == "choice":
            form.add(f.name, "true" if f.json_type == "boolean" else f.options[0][0])
        elif f.kind == "boolean":
            form.add(f.name, "true")
        elif f.kind == "number":
            form.add(f.name, "1,250.50")
        elif f.kind == "integer":
            form.add(f.name, "3")
        elif f.kind == "date":
            form.add(f.name, "2027-01-31")
        elif f.kind == "datetime":
            form.add(f.name, "2026-12-21T14:30")
        elif f.kind == "email":
            form.add(f.name, "ann@example.com")
        elif f.kind == "list":
            form.add(f.name, "alice.jones\r\nbob.smith\r\n")
        elif f.kind == "textarea":
            form.add(f.name, "What happened.\r\nAnd then what.")
        else:
            form.add(f.name, "Example-value_1")
    return form


# -- every real form ----------------------------------------------------------------------


def test_there_are_forms():
    assert len(FORM_NAMES) >= 28


@pytest.mark.parametrize("name", FORM_NAMES)
def test_every_property_becomes_a_field(name):
    schema, ui = load(name)
    fields = fields_for(schema, ui)
    assert [f.name for f in fields] == (ui or {}).get("ui:order", list(schema["properties"]))
    assert {f.name for f in fields} == set(schema["properties"])
    for f in fields:
        assert f.kind in KINDS
        assert f.label
        assert f.required == (f.name in schema.get("required", []))
        if f.kind == "choice":
            assert f.options and f.widget in ("radio", "select")
        if f.kind == "group":
            prop = schema["properties"][f.name]
            assert [c.name for c in f.children] == [f"{f.name}.{k}" for k in prop["properties"]]


@pytest.mark.parametrize("name", FORM_NAMES)
def test_every_form_renders_a_labelled_control_per_field(app, name):
    schema, ui = load(name)
    fields = fields_for(schema, ui)
    html = render(app, fields)
    page = Page(html)
    names = {c.get("name") for c in page.controls}
    for f in leaves(fields):
        assert f.name in names, f.name
        controls = [c for c in page.controls if c.get("name") == f.name]
        for c in controls:
            assert c["id"] in page.label_for, (f.name, c["id"])
        if f.kind == "choice" and f.widget == "radio":
            assert len(controls) == len(f.options)
            assert all(c["type"] == "radio" for c in controls)
        else:
            assert len(controls) == 1
        if f.help:
            assert f"{f.id}-hint" in page.ids
            assert all(f"{f.id}-hint" in c.get("aria-describedby", "") for c in controls) or (
                f.kind == "choice" and f.widget == "radio"
            )
        if f.required and f.kind != "boolean":
            assert all("required" in c for c in controls), f.name
    radio_groups = [f for f in leaves(fields) if f.widget == "radio"]
    groups = [f for f in fields if f.kind == "group"]
    assert page.legends == len(radio_groups) + len(groups)
    assert "<script" not in html


@pytest.mark.parametrize("name", FORM_NAMES)
def test_every_form_accepts_a_typical_submission(name):
    schema, ui = load(name)
    form = typical_values(fields_for(schema, ui))
    data, errors = validate(schema, ui, form, sources_for(name), name)
    assert errors == {}
    check_form_data(sources_for(name), name, data)  # the engine agrees
    assert "csrf_token" not in data


@pytest.mark.parametrize("name", FORM_NAMES)
def test_every_form_reports_an_empty_submission_per_field_in_plain_english(name):
    schema, ui = load(name)
    fields = fields_for(schema, ui)
    data, errors = validate(schema, ui, {}, sources_for(name), name)
    required = set(schema.get("required", []))
    assert required <= set(errors)
    known = set(fields.by_name) | {"_form"}
    assert set(errors) <= known
    for messages in errors.values():
        for message in messages:
            assert "'" not in message and "required property" not in message, message
    with pytest.raises(InvalidData):
        check_form_data(sources_for(name), name, data)


@pytest.mark.parametrize("name", FORM_NAMES)
def test_data_shown_again_reads_back_the_same(name):
    schema, ui = load(name)
    fields = fields_for(schema, ui)
    data, errors = parse_submission(schema, ui, typical_values(fields))
    assert not errors
    again, errors = parse_submission(schema, ui, values_from_data(schema, ui, data))
    assert not errors
    assert again == data


# -- reading values -----------------------------------------------------------------------


def test_typed_values_from_a_real_form():
    schema, ui = load("record_key_details.json")
    form = MultiDict(
        {
            "category": "product_quality",
            "product_or_service": "  Boiler service  ",
            "personal_data_involved": "true",
            "data_breach_suspected": "false",
            "financial_loss_amount": "£1,250.50",
            "key_details_notes": "",
            "csrf_token": "abc",
        }
    )
    data, errors = parse_submission(schema, ui, form)
    assert errors == {}
    assert data["personal_data_involved"] is True
    assert data["data_breach_suspected"] is False
    assert data["financial_loss_amount"] == 1250.5
    assert data["product_or_service"] == "Boiler service"
    assert "key_details_notes" not in data  # empty optional text is left out
    assert "csrf_token" not in data
    assert "confidential_information_involved" not in data  # radio not chosen


def test_whole_numbers_stay_integers():
    schema, ui = load("record_key_details.json")
    data, _ = parse_submission(schema, ui, {"financial_loss_amount": "0"})
    assert data["financial_loss_amount"] == 0 and isinstance(data["financial_loss_amount"], int)


def test_checkboxes_ticked_unticked_and_must_tick():
    schema = {
        "type": "object",
        "properties": {
            "plain": {"type": "boolean", "title": "Plain"},
            "confirm": {"type": "boolean", "const": True, "title": "Confirm"},
        },
        "required": ["confirm"],
        "additionalProperties": False,
    }
    assert parse_submission(schema, None, {"plain": "true", "confirm": "on"})[0] == {
        "plain": True,
        "confirm": True,
    }
    data, errors = validate(schema, None, {})
    assert data == {"plain": False}  # an unticked must-tick box is left out, not False
    assert errors == {"confirm": ["tick this box to confirm"]}


def test_enum_values_and_bad_choice():
    schema, ui = load("send_acknowledgement.json")
    fields = fields_for(schema, ui)
    channel = fields.by_name["acknowledgement_channel"]
    assert channel.widget == "radio" and len(channel.options) == 4
    value, title = channel.options[0]
    data, errors = parse_submission(schema, ui, {"acknowledgement_channel": value})
    assert data["acknowledgement_channel"] == value and not errors
    data, errors = validate(schema, ui, {"acknowledgement_channel": "pigeon"})
    assert errors["acknowledgement_channel"] == ["choose one of the options"]
    assert "acknowledgement_channel" not in data


def test_long_choice_lists_are_selects_and_short_ones_radios():
    schema, ui = load("record_findings.json")
    fields = fields_for(schema, ui).by_name
    assert fields["root_cause_category"].widget == "select"  # 9 options
    assert fields["complaint_upheld"].widget == "radio"  # 3 options
    assert fields["escalation_needed"].kind == "choice"  # boolean with ui:widget radio
    assert fields["escalation_needed"].options == [("true", "Yes"), ("false", "No")]


def test_textarea_for_long_text_and_widget_hint():
    schema = {
        "type": "object",
        "properties": {
            "short": {"type": "string", "maxLength": 200},
            "long": {"type": "string", "maxLength": 201},
            "hinted": {"type": "string", "maxLength": 20},
        },
    }
    fields = fields_for(schema, {"hinted": {"ui:widget": "textarea", "ui:options": {"rows": 7}}})
    kinds = {f.name: (f.kind, f.rows) for f in fields}
    assert kinds == {"short": ("text", None), "long": ("textarea", 4), "hinted": ("textarea", 7)}
    assert fields[0].label == "Short"  # humanised name when there is no title
    assert fields[0].constraints["maxlength"] == 200


def test_ui_order_keeps_properties_it_forgets():
    schema = {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}}
    assert [f.name for f in fields_for(schema, {"ui:order": ["c", "a"]})] == ["c", "a", "b"]
    assert [f.name for f in fields_for(schema, {"ui:order": ["c", "*", "a"]})] == ["c", "b", "a"]


def test_list_field_one_per_line():
    schema, ui = load("assess_security_incident.json")
    f = fields_for(schema, ui).by_name["need_to_know_users"]
    assert f.kind == "list"
    data, errors = parse_submission(schema, ui, {"need_to_know_users": "ann\r\n\r\n bob \n"})
    assert data["need_to_know_users"] == ["ann", "bob"] and not errors
    data, errors = validate(schema, ui, {"need_to_know_users": "ann\nbad name!"})
    assert errors["need_to_know_users"] == ["use only letters, digits and . _ @ -"]


def test_group_fields_are_nested_and_left_out_when_empty():
    schema, ui = load("complete_register_record.json")
    data, _ = parse_submission(schema, ui, {"record_checked": "true"})
    assert data == {"record_checked": True}
    data, errors = validate(
        schema,
        ui,
        {"record_checked": "true", "complainant.email": "not-an-address"},
        sources_for("complete_register_record.json"),
        "complete_register_record.json",
    )
    assert data["complainant"] == {"email": "not-an-address"}
    assert errors["complainant.name"] == ["this field is required"]
    assert errors["complainant.email"] == ["enter an email address, e.g. name@example.com"]


# -- dates and times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2026-01-15T09:00", "2026-01-15T09:00:00+00:00"),  # GMT
        ("2026-07-15T09:00", "2026-07-15T08:00:00+00:00"),  # BST
        ("2026-03-29T00:30", "2026-03-29T00:30:00+00:00"),  # before the clocks go forward
        ("2026-03-29T02:30", "2026-03-29T01:30:00+00:00"),  # after: BST
        ("2026-10-25T00:30", "2026-10-24T23:30:00+00:00"),  # BST, before they go back
        ("2026-10-25T01:30", "2026-10-25T00:30:00+00:00"),  # twice: the first (BST) is taken
        ("2026-10-25T02:30", "2026-10-25T02:30:00+00:00"),  # GMT again
        ("2026-12-21T14:30:45", "2026-12-21T14:30:45+00:00"),  # seconds kept
        ("2026-07-15T09:00+01:00", "2026-07-15T08:00:00+00:00"),  # explicit offset wins
    ],
)
def test_datetime_local_in_london_becomes_utc(local, utc):
    schema, ui = load("decide_ico_notification.json")
    data, errors = parse_submission(schema, ui, {"ico_notified_at": local})
    assert errors == {}
    assert data["ico_notified_at"] == utc


def test_a_time_the_clocks_skip_is_refused():
    schema, ui = load("decide_ico_notification.json")
    data, errors = validate(schema, ui, {"ico_notified_at": "2026-03-29T01:30"})
    assert "ico_notified_at" not in data
    assert len(errors["ico_notified_at"]) == 1
    assert "clocks went forward" in errors["ico_notified_at"][0]
    with pytest.raises(ValueError):
        local_to_instant("2026-03-29T01:30")


def test_instants_shown_on_london_clocks():
    assert instant_to_local("2026-07-15T08:00:00+00:00") == "2026-07-15T09:00"
    assert instant_to_local("2026-01-15T09:00:00+00:00") == "2026-01-15T09:00"
    assert instant_to_local("2026-10-25T01:30:00+00:00") == "2026-10-25T01:30"


def test_dates():
    schema, ui = load("decide_corrective_action.json")
    f = fields_for(schema, ui).by_name["corrective_action_due"]
    assert f.kind == "date" and f.input_type == "date"
    assert (
        parse_submission(schema, ui, {"corrective_action_due": "2027-01-31"})[0][
            "corrective_action_due"
        ]
        == "2027-01-31"
    )
    assert (
        parse_submission(schema, ui, {"corrective_action_due": "31/01/2027"})[0][
            "corrective_action_due"
        ]
        == "2027-01-31"
    )
    _, errors = parse_submission(schema, ui, {"corrective_action_due": "2027-02-30"})
    assert errors == {"corrective_action_due": ["enter a real date, e.g. 2027-01-31"]}


def test_datetime_field_renders_a_datetime_local_input(app):
    schema, ui = load("assess_security_incident.json")
    fields = fields_for(schema, ui)
    html = render(app, fields, values={"aware_at": "2026-10-25T01:30"})
    control = next(c for c in Page(html).controls if c.get("name") == "aware_at")
    assert control["type"] == "datetime-local"
    assert control["value"] == "2026-10-25T01:30"


# -- errors and re-rendering --------------------------------------------------------------


def test_errors_come_back_per_field_with_typed_values_kept(app):
    schema, ui = load("record_key_details.json")
    fields = fields_for(schema, ui)
    form = MultiDict(
        {
            "category": "product_quality",
            "product_or_service": "Boiler",
            "financial_loss_amount": "about forty quid",
            "key_details_notes": "Customer was upset.\r\nWants a call back.",
            "personal_data_involved": "true",
        }
    )
    data, errors = validate(
        schema, ui, form, sources_for("record_key_details.json"), "record_key_details.json"
    )
    assert errors["financial_loss_amount"] == ["enter a number, e.g. 250 or 99.95"]
    assert errors["data_breach_suspected"] == ["choose one of the options"]
    assert "category" not in errors
    html = render(app, fields, errors, form)
    page = Page(html)
    by_name = {c["name"]: c for c in page.controls if c.get("type") != "radio"}
    assert by_name["financial_loss_amount"]["value"] == "about forty quid"
    assert by_name["financial_loss_amount"]["aria-invalid"] == "true"
    assert "f-financial_loss_amount-error" in by_name["financial_loss_amount"]["aria-describedby"]
    assert "Customer was upset.\r\nWants a call back.</textarea>" in html or (
        "Customer was upset.\nWants a call back.</textarea>" in html
    )
    ticked = [
        c for c in page.controls if c.get("name") == "personal_data_involved" and "checked" in c
    ]
    assert [c["value"] for c in ticked] == ["true"]
    assert 'role="alert"' in html
    assert 'href="#f-financial_loss_amount"' in html
    assert 'href="#f-data_breach_suspected-0"' in html  # the first radio of the group


def test_select_keeps_its_choice(app):
    schema, ui = load("record_findings.json")
    fields = fields_for(schema, ui)
    value = fields.by_name["root_cause_category"].options[2][0]
    html = render(app, fields, values={"root_cause_category": value})
    assert f'<option value="{value}" selected>' in html


def test_fill_values_sets_field_value(app):
    schema, ui = load("record_key_details.json")
    filled = fill_values(fields_for(schema, ui), {"product_or_service": "Kettle"})
    assert filled.by_name["product_or_service"].value == "Kettle"
    assert filled.by_name["category"].value is None
    html = render(app, filled)
    assert 'value="Kettle"' in html


def test_existing_data_is_shown_on_london_clocks():
    schema, ui = load("record_external_notifications.json")
    values = values_from_data(
        schema,
        ui,
        {"regulator_informed": True, "regulator_informed_at": "2026-07-01T09:00:00+00:00"},
    )
    assert values == {"regulator_informed": "true", "regulator_informed_at": "2026-07-01T10:00"}


def test_html_in_labels_help_options_and_values_is_escaped(app):
    schema = {
        "type": "object",
        "properties": {
            "x": {
                "type": "string",
                "title": "<script>alert(1)</script>",
                "description": "<b>bold</b>",
            },
            "y": {
                "type": "string",
                "enum": ["a"],
                "oneOf": [{"const": "a", "title": "<i>A</i>"}],
                "title": "Y",
            },
            "z": {"type": "string", "maxLength": 1000, "title": "Z"},
        },
    }
    fields = fields_for(schema, None)
    values = {"x": '"><script>alert(2)</script>', "z": "</textarea><script>alert(3)</script>"}
    html = render(app, fields, {"x": ["<em>bad</em>"]}, values)
    assert "<script" not in html
    assert "<b>" not in html and "<i>" not in html and "<em>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;" in html
    assert "&lt;em&gt;bad&lt;/em&gt;" in html


def test_file_fields_minimally_supported(app):
    schema = {
        "type": "object",
        "properties": {
            "evidence": {
                "type": "string",
                "format": "binary",
                "contentMediaType": "application/pdf",
                "title": "Evidence",
            },
            "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
        },
    }
    fields = fields_for(schema, None)
    assert [f.kind for f in fields] == ["file", "file"]
    assert fields.needs_multipart
    controls = Page(render(app, fields)).controls
    assert [c["type"] for c in controls] == ["file", "file"]
    assert controls[0]["accept"] == "application/pdf"
    assert "multiple" in controls[1]
    # uploads are stored by the caller; a stored reference posted back is kept
    assert parse_submission(schema, None, {"evidence": "att-123"})[0] == {"evidence": "att-123"}


# -- a realistic submission through the engine's own check ---------------------------------


def test_realistic_register_record_passes_the_engine():
    name = "complete_register_record.json"
    schema, ui = load(name)
    form = MultiDict(
        [
            ("csrf_token", "abc"),
            ("complainant.name", "Ann Example"),
            ("complainant.email", "ann@example.com"),
            ("complainant.phone", "01632 960000"),
            ("complainant.postal_address", "1 High Street\r\nAnytown\r\nAB1 2CD"),
            ("summary", "Engineer missed two appointments"),
            ("description", "Booked for Monday and Wednesday; nobody came either day."),
            ("product_or_service", "Boiler service plan"),
            ("remedy_sought", ""),
            ("record_checked", "true"),
        ]
    )
    data, errors = validate(schema, ui, form, sources_for(name), name)
    assert errors == {}
    assert data == {
        "complainant": {
            "name": "Ann Example",
            "email": "ann@example.com",
            "phone": "01632 960000",
            "postal_address": "1 High Street\nAnytown\nAB1 2CD",
        },
        "summary": "Engineer missed two appointments",
        "description": "Booked for Monday and Wednesday; nobody came either day.",
        "product_or_service": "Boiler service plan",
        "record_checked": True,
    }
    check_form_data(sources_for(name), name, data)


def test_plain_english_for_length_and_conditional_rules():
    name = "complete_register_record.json"
    schema, ui = load(name)
    _, errors = validate(schema, ui, {"summary": "x" * 201}, sources_for(name), name)
    assert errors == {
        "summary": ["must be at most 200 characters"],
        "record_checked": ["tick this box to confirm"],
    }
    name = "decide_ico_notification.json"
    schema, ui = load(name)
    fields = fields_for(schema, ui).by_name
    assert fields["ico_notified_at"].conditional and not fields["ico_notified_at"].optional
    risk = [v for v, _ in fields["risk_to_individuals"].options if v != "unlikely"][0]
    _, errors = validate(
        schema, ui, {"risk_to_individuals": risk, "ico_notified": "false"}, sources_for(name), name
    )
    # the schema's own explanation is used for a conditional "must be yes"
    assert errors["ico_notified"] == [
        "A breach that is likely to result in a risk to people must be reported to the ICO."
    ]
