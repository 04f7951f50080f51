"""Task forms: data is checked against the task's JSON Schema on the server."""

from __future__ import annotations

import json

import pytest

from engine.errors import InvalidData
from engine.forms import check_form_data, form_source_key

FORM = {
    "type": "object",
    "required": ["aware_at"],
    "properties": {
        "aware_at": {"type": "string", "format": "date-time"},
        "contact": {"type": "string", "format": "email"},
    },
}
SOURCES = {form_source_key("f.json"): json.dumps(FORM)}


def _fields(data: dict, form: str | None = "f.json") -> dict:
    with pytest.raises(InvalidData) as caught:
        check_form_data(SOURCES, form, data)
    return caught.value.fields


def test_date_time_fields_must_be_real_instants():
    assert "aware_at" in _fields({"aware_at": "2026-13-45T99:00:00Z"})
    check_form_data(SOURCES, "f.json", {"aware_at": "2026-12-21T14:30:00+00:00"})


def test_email_fields_must_look_like_addresses():
    assert "contact" in _fields({"aware_at": "2026-12-21T14:30:00Z", "contact": "nobody"})


def test_required_fields_are_named():
    assert _fields({}) == {"aware_at": ["this field is required"]}


def test_a_form_accepts_only_the_fields_it_declares():
    assert _fields({"aware_at": "2026-12-21T14:30:00Z", "status": "closed"}) == {
        "status": ["this form has no such field"]}


def test_a_task_without_a_form_takes_no_data():
    assert _fields({"anything": 1}, form=None) == {"anything": ["this task has no such field"]}
