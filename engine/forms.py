"""Task forms: JSON Schemas versioned with their definition, and checking data against them.

Evidence fields: a property with ``"format": "evidence"`` holds files kept as evidence
of the task's complaint (engine/documents.py). Its value is a list of references to
stored documents, ``[{"document_id": 12, "filename": "photo.jpg"}, ...]``, so the
property is declared as an array of such objects (``maxItems`` limits the number of
files; ``maxItems: 1`` is a single file). The bytes never enter the case data. The
staff page renders it as a file input and stores the uploads; the API takes the ids of
documents already kept with the complaint (see ``engine.documents.resolve_evidence``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from engine.errors import InvalidData

FORMS_PREFIX = "forms/"
EVIDENCE_FORMAT = "evidence"


def form_source_key(form_name: str) -> str:
    return FORMS_PREFIX + form_name


@functools.lru_cache(maxsize=512)
def _validator(schema_text: str) -> Draft202012Validator:
    schema = json.loads(schema_text)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def form_schema(sources: dict[str, str], form_name: str | None) -> dict[str, Any] | None:
    if not form_name:
        return None
    text = sources.get(form_source_key(form_name))
    return json.loads(text) if text is not None else None


def evidence_fields(schema: dict[str, Any] | None) -> list[str]:
    """The top-level properties of ``schema`` that hold evidence files, in schema order."""
    properties = (schema or {}).get("properties") or {}
    return [name for name, prop in properties.items()
            if isinstance(prop, dict) and prop.get("format") == EVIDENCE_FORMAT]


#: A string property with this format names a user who must be an active holder of the
#: complaint_owner role (checked at task completion: engine.owner_change).
COMPLAINT_OWNER_FORMAT = "complaint-owner"


def complaint_owner_fields(sources: dict[str, str], form_name: str | None) -> list[str]:
    """The top-level properties of the task's form that name a Complaint Owner."""
    text = sources.get(form_source_key(form_name)) if form_name else None
    if text is None:
        return []
    properties = _validator(text).schema.get("properties") or {}
    return [name for name, prop in properties.items()
            if isinstance(prop, dict) and prop.get("format") == COMPLAINT_OWNER_FORMAT]


def check_form_data(sources: dict[str, str], form_name: str | None, data: dict[str, Any]) -> None:
    """Raise InvalidData (with per-field messages) unless ``data`` satisfies the task's form.

    A task without a form accepts no data, and a form accepts only the fields it
    declares: a request cannot set case variables that the form does not offer.
    """
    if not isinstance(data, dict):
        raise InvalidData("the task data must be an object of field values")
    if not form_name:
        if data:
            raise InvalidData(
                "this task has no form, so it takes no data",
                {key: ["this task has no such field"] for key in data},
            )
        return
    text = sources.get(form_source_key(form_name))
    if text is None:
        raise InvalidData(f"the form {form_name!r} is missing from this definition version")
    validator = _validator(text)
    declared = set(validator.schema.get("properties", {}))
    fields: dict[str, list[str]] = {}
    for key in data:
        if key not in declared:
            fields.setdefault(key, []).append("this form has no such field")
    for error in validator.iter_errors(data):
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else "?"
            fields.setdefault(missing, []).append("this field is required")
            continue
        path = ".".join(str(p) for p in error.absolute_path) or "_form"
        fields.setdefault(path, []).append(error.message)
    if fields:
        raise InvalidData("the form has errors", fields)
