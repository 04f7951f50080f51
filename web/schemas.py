"""marshmallow schemas of the API's request bodies and query strings.

A complaint's intake body is checked by the engine (engine.register), which owns the
rules of the register; ``ComplaintBody`` is that schema, named here with the others.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from engine.register import CHANNELS, CLASSIFICATIONS, STATUSES, ComplaintIntakeSchema

ComplaintBody = ComplaintIntakeSchema

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25


class CompleteTaskBody(Schema):
    data = fields.Dict(keys=fields.String(), required=True)


class RegisterQuery(Schema):
    """``GET /complaints``: filters and paging."""

    status = fields.String(validate=validate.OneOf(STATUSES, error="must be one of: {choices}"))
    classification = fields.String(
        validate=validate.OneOf(CLASSIFICATIONS, error="must be one of: {choices}"))
    channel = fields.String(validate=validate.OneOf(CHANNELS, error="must be one of: {choices}"))
    q = fields.String(validate=validate.Length(max=200, error="at most {max} characters"))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, error="at least 1"))
    per_page = fields.Integer(
        load_default=DEFAULT_PER_PAGE,
        validate=validate.Range(min=1, max=MAX_PER_PAGE, error="from {min} to {max}"))


def _uploaded_file(value: object) -> None:
    if not isinstance(value, FileStorage) or not value.filename:
        raise ValidationError("each part must be a file with a name")


class DefinitionUpload(Schema):
    """``POST /definitions`` (multipart): the files, and an optional note on the change."""

    files = fields.List(
        fields.Raw(validate=_uploaded_file), required=True,
        validate=validate.Length(min=1, error="upload at least one BPMN, DMN or form file"),
        error_messages={"required": "upload at least one BPMN, DMN or form file"})
    change_note = fields.String(
        allow_none=True, load_default=None,
        validate=validate.Length(max=2000, error="at most {max} characters"))
