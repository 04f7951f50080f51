"""The Complaints Register: recording a complaint, and keeping its row in step with its case.

Recording (``record_complaint``) validates the intake data, gives the complaint its
reference, starts the ``complaint_handling`` process with the intake as start data and
writes the register row, all in the caller's unit of work.

After that the process owns the facts: after every step of a ``complaint_handling``
instance an after-step hook copies the register fields of its case data
(engine.case_data: the changes of its completed tasks in completion order) into its
row. The hook is on the engine's hot path, so it costs one attribute check for other
processes, and for a complaint one UPDATE (a statement built once per set of columns),
issued only when a register value differs from what this workflow last wrote. The
values last written are kept on the workflow object itself: the engine caches a
workflow only after its transaction committed and drops it on rollback, so they
always match the row. The same hook keeps the case's deadline records
(``complaint_deadlines``: computed, met, missed, with the actual times; engine.deadlines),
writing only rows that changed.

References are ``CMP-YYYY-NNNNNN``: YYYY is the year in which the complaint reached the
company (``received_at``) in the company's time zone (setting ``COMPLAINTS_TIMEZONE``,
default Europe/London), so a letter received on 31 December and entered on 2 January
counts in the old year; NNNNNN counts the complaints of that year from 000001, in the
order they were recorded. The counter is one row per year, advanced with an atomic
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` in the recording transaction: two
recordings never get the same number, and a recording that rolls back gives its
number back (the register has no gaps). After 999999 a year's number has 7 digits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine import clock, settings
from engine import deadlines as deadline_records
from engine.audit import Actor, AuditBatch, record
from engine.calendar import iso, parse_instant
from engine.case_data import case_data
from engine.db import UnitOfWork
from engine.errors import Forbidden, InvalidData
from engine.instances import InstanceRef, on_after_step, start_instance
from engine.models import Complaint, ComplaintReferenceCounter
from engine.permissions import may_record_complaint

#: The process every recorded complaint runs (processes/, the policy).
COMPLAINT_PROCESS_ID = "complaint_handling"

CHANNELS = ("email", "telephone", "letter", "in_person", "website")
CLASSIFICATIONS = ("minor", "major")
STATUSES = ("received", "logged", "acknowledged", "investigating", "resolved", "escalated",
            "closed")
COMPLAINANT_FIELDS = ("name", "email", "phone", "postal_address")

SUMMARY_MAX = 200
TEXT_MAX = 20_000
EXAMPLE_INSTANT = "2026-12-21T14:30:00+00:00"


# -- intake validation ---------------------------------------------------------------------

_REQUIRED = {"required": "this field is required", "null": "this field is required"}


def _not_blank(value: str) -> None:
    if not value:
        raise ValidationError("this field is required")


class _Text(fields.String):
    """A string with the white space around it removed; blank optional text is null."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return None if not text and not self.required else text


class _Instant(fields.Field):
    """An ISO-8601 date and time with a zone, not in the future; UTC, whole seconds."""

    default_error_messages = {
        "type": f"give the date and time as ISO-8601 text, e.g. {EXAMPLE_INSTANT}",
        "malformed": f"not an ISO-8601 date and time; give e.g. {EXAMPLE_INSTANT}",
        "naive": f"give the time zone, e.g. {EXAMPLE_INSTANT} or 2026-12-21T14:30:00Z",
        "future": "received_at is in the future",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("type")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise self.make_error("malformed") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise self.make_error("naive")
        instant = parsed.astimezone(UTC).replace(microsecond=0)
        if instant > clock.now():
            raise self.make_error("future")
        return instant


def _max_length(limit: int):
    def check(value: str | None) -> None:
        if value is not None and len(value) > limit:
            raise ValidationError(f"at most {limit} characters")
    return check


def _email(value: str | None) -> None:
    if value is not None:
        validate.Email(error="not a valid email address")(value)


def _text(max_length: int, required: bool = False, *checks) -> _Text:
    if required:
        return _Text(required=True, error_messages=_REQUIRED,
                     validate=[_not_blank, _max_length(max_length), *checks])
    return _Text(allow_none=True, load_default=None, validate=[_max_length(max_length), *checks])


class ComplainantSchema(Schema):
    name = _text(200, required=True)
    email = _text(254, False, _email)
    phone = _text(40)
    postal_address = _text(1000)


class ComplaintIntakeSchema(Schema):
    """What is known when a complaint is received (register names, shared/interface.md).

    The rest of the register (classification, owner, status, ...) is set by the
    process; a field it does not know is refused.
    """

    channel = fields.String(
        required=True, error_messages=_REQUIRED,
        validate=validate.OneOf(CHANNELS, error="must be one of: {choices}"))
    received_at = _Instant(allow_none=True, load_default=None)
    complainant = fields.Nested(ComplainantSchema, required=True, error_messages=_REQUIRED)
    summary = _text(SUMMARY_MAX, required=True)
    description = _text(TEXT_MAX, required=True)
    product_or_service = _text(200)
    remedy_sought = _text(TEXT_MAX)
    personal_data_involved = fields.Boolean(allow_none=True, load_default=None,
                                            truthy={True}, falsy={False})


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"a.b": ["..."]}``: the interface's ``fields``."""
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_messages(value, name).items():
                out.setdefault(k, []).extend(v)
        return out
    if isinstance(messages, list | tuple):
        return {prefix or "_body": [str(m) for m in messages]}
    return {prefix or "_body": [str(messages)]}


def validate_intake(data: Any) -> dict[str, Any]:
    """The intake data checked and normalised; InvalidData (with ``fields``) otherwise."""
    if not isinstance(data, Mapping):
        raise InvalidData("the complaint must be an object of register fields")
    try:
        intake = ComplaintIntakeSchema().load(dict(data))
    except ValidationError as error:
        raise InvalidData("the complaint has errors",
                          flatten_messages(error.normalized_messages())) from None
    if intake["received_at"] is None:
        intake["received_at"] = clock.now().astimezone(UTC).replace(microsecond=0)
    intake["complainant"] = {key: intake["complainant"].get(key) for key in COMPLAINANT_FIELDS}
    return intake


# -- references ----------------------------------------------------------------------------

def _next_number_statement(dialect_insert):
    table = ComplaintReferenceCounter.__table__
    statement = dialect_insert(table).values(year=bindparam("year"), last_number=1)
    return statement.on_conflict_do_update(
        index_elements=[table.c.year], set_={"last_number": table.c.last_number + 1}
    ).returning(table.c.last_number)


_NEXT_NUMBER = {
    "postgresql": _next_number_statement(postgresql.insert),
    "sqlite": _next_number_statement(sqlite.insert),
}


def reference_year(received_at: datetime) -> int:
    return received_at.astimezone(ZoneInfo(settings.load().timezone)).year


def next_reference(conn: Connection, received_at: datetime) -> str:
    """The next reference of the year of receipt, taken in the caller's transaction."""
    year = reference_year(received_at)
    number = conn.execute(_NEXT_NUMBER[conn.dialect.name], {"year": year}).scalar_one()
    return f"CMP-{year:04d}-{number:06d}"


# -- recording -----------------------------------------------------------------------------

#: The register row being recorded in this context; the after-step hook inserts it when
#: the new instance's first step is saved (so it starts with the process's first values).
_recording: ContextVar[dict[str, Any] | None] = ContextVar("register_recording", default=None)


def record_complaint(uow: UnitOfWork, data: Any, actor: Actor) -> Complaint:
    """Record a complaint and start its process, in the caller's unit of work."""
    if not may_record_complaint(actor):
        raise Forbidden("recording a complaint needs the staff role")
    intake = validate_intake(data)
    conn = uow.connection
    reference = next_reference(conn, intake["received_at"])
    start_data = {**intake, "received_at": iso(intake["received_at"]),
                  "reference": reference, "status": "received"}
    now = clock.now()
    row = {**_columns(intake), "reference": reference, "status": "received", "deadlines": {},
           "need_to_know": bool(intake["personal_data_involved"]), "created_at": now,
           "updated_at": now, "instance_id": None}
    token = _recording.set(row)
    try:
        ref = start_instance(uow, COMPLAINT_PROCESS_ID, start_data, actor)
    finally:
        _recording.reset(token)
    if row["instance_id"] != ref.id:  # pragma: no cover - the hook always runs on start
        raise RuntimeError("the register row was not written when the process started")
    return uow.session.scalars(select(Complaint).where(Complaint.instance_id == ref.id)).one()


def record_reads(session: Session, actor: Actor, complaints: list[Complaint],
                 via: str) -> None:
    """Audit that ``actor`` read these need-to-know complaints (ISO 27001 A.5.26, A.8.15)."""
    for complaint in complaints:
        if complaint.need_to_know:
            record(session, actor, "complaint_read", instance_id=complaint.instance_id,
                   details={"reference": complaint.reference, "via": via})


# -- keeping the register in step ----------------------------------------------------------

_TEXT_COLUMNS = ("summary", "description", "product_or_service", "remedy_sought",
                 "root_cause", "corrective_action", "remedial_measures", "resolution_summary")
_LABEL_COLUMNS = {"channel": 20, "classification": 40, "status": 40, "owner": 80}
_INSTANT_COLUMNS = ("received_at", "logged_at", "acknowledged_at", "resolved_at", "closed_at")
_BOOLEAN_COLUMNS = ("personal_data_involved", "data_breach")
_NOT_NULL = frozenset({"channel", "received_at", "complainant_name", "summary", "description",
                       "status"})
_NEED_TO_KNOW_KEYS = ("personal_data_involved", "data_breach", "need_to_know")


def _columns(intake: Mapping[str, Any]) -> dict[str, Any]:
    values = {key: intake.get(key) for key in (
        "channel", "received_at", "summary", "description", "product_or_service",
        "remedy_sought", "personal_data_involved")}
    for key in COMPLAINANT_FIELDS:
        values[f"complainant_{key}"] = intake["complainant"].get(key)
    return values


def register_values(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The register columns the case data sets, and the problems of values it cannot take.

    A register field absent from the case data leaves its column as it is; a value of
    the wrong type is ignored (and reported) rather than stopping the case.
    """
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}

    def put(column: str, value: Any, field: str) -> None:
        if value is None and column in _NOT_NULL:
            problems[field] = "cannot be emptied"
        else:
            values[column] = value

    for key in _TEXT_COLUMNS:
        if key in data:
            value = data[key]
            if value is None or isinstance(value, str):
                put(key, value, key)
            else:
                problems[key] = "not text"
    for key, length in _LABEL_COLUMNS.items():
        if key in data:
            value = data[key]
            if value is None or (isinstance(value, str) and len(value) <= length):
                put(key, value or None, key)
            else:
                problems[key] = f"not text of at most {length} characters"
    for key in _INSTANT_COLUMNS:
        if key in data:
            value = data[key]
            try:
                put(key, None if value in (None, "") else parse_instant(value), key)
            except (TypeError, ValueError):
                problems[key] = "not an ISO-8601 instant with a zone"
    for key in _BOOLEAN_COLUMNS:
        if key in data:
            if data[key] is None or isinstance(data[key], bool):
                values[key] = data[key]
            else:
                problems[key] = "not true or false"
    complainant = data.get("complainant")
    if isinstance(complainant, Mapping):
        for key in COMPLAINANT_FIELDS:
            if key in complainant:
                value = complainant[key]
                if value is None or isinstance(value, str):
                    put(f"complainant_{key}", value or None, f"complainant.{key}")
                else:
                    problems[f"complainant.{key}"] = "not text"
    elif "complainant" in data:
        problems["complainant"] = "not an object"
    if "deadlines" in data:
        values["deadlines"] = _deadlines(data["deadlines"], problems)
    if any(key in data for key in _NEED_TO_KNOW_KEYS):
        values["need_to_know"] = any(data.get(key) is True for key in _NEED_TO_KNOW_KEYS)
    return values, problems


def _deadlines(value: Any, problems: dict[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        problems["deadlines"] = "not an object of instants"
        return {}
    out = {}
    for name, when in value.items():
        try:
            out[str(name)] = iso(parse_instant(when))
        except (TypeError, ValueError):
            problems[f"deadlines.{name}"] = "not an ISO-8601 instant with a zone"
    return out


_SYNCED = "_complaints_register_values"
_INSERT_ROW = insert(Complaint.__table__)


@functools.lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...]):
    table = Complaint.__table__
    return (
        update(table)
        .where(table.c.instance_id == bindparam("b_instance_id"))
        .values({column: bindparam(f"b_{column}") for column in (*columns, "updated_at")})
    )


@on_after_step
def sync_register(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow, actor: Actor,
                  audit: AuditBatch) -> None:
    """After every step of a complaint's process: its register row follows its case data."""
    if workflow.spec.name != COMPLAINT_PROCESS_ID:
        return
    data = case_data(workflow)
    values, problems = register_values(data)
    recording = _recording.get()
    if recording is not None and recording["instance_id"] is None:
        recording.update(values, instance_id=ref.id)
        inserted = conn.execute(_INSERT_ROW, recording)
        audit.add("complaint_recorded", reference=recording["reference"],
                  channel=recording["channel"], received_at=iso(recording["received_at"]))
        _sync_deadlines(conn, ref, workflow, data, audit, inserted.inserted_primary_key[0])
    else:
        _sync_deadlines(conn, ref, workflow, data, audit)
        if getattr(workflow, _SYNCED, None) == values:
            return
        if values:
            columns = tuple(sorted(values))
            params = {f"b_{column}": value for column, value in values.items()}
            params.update(b_instance_id=ref.id, b_updated_at=clock.now())
            conn.execute(_update_statement(columns), params)
    for field, message in sorted(problems.items()):
        audit.add("register_field_ignored", field=field, problem=message)
    setattr(workflow, _SYNCED, values)


#: (complaint id, its deadline records) as last written, kept on the workflow like
#: ``_SYNCED`` (a workflow is cached only after its transaction committed).
_DEADLINES = "_complaints_deadline_records"
_COMPLAINT_ID = select(Complaint.id).where(Complaint.instance_id == bindparam("instance_id"))


def _sync_deadlines(conn: Connection, ref: InstanceRef, workflow: BpmnWorkflow,
                    data: dict[str, Any], audit: AuditBatch,
                    complaint_id: int | None = None) -> None:
    """Record the case's deadlines: computed, met (with the time), missed (engine.deadlines)."""
    cached = getattr(workflow, _DEADLINES, None)
    known = None
    if complaint_id is not None:
        known = {}
    elif cached is not None:
        complaint_id, known = cached
    else:
        complaint_id = conn.execute(_COMPLAINT_ID, {"instance_id": ref.id}).scalar()
    if complaint_id is None:  # a complaint process started without recording: no row
        setattr(workflow, _DEADLINES, (None, {}))
        return
    raw = data.get("deadlines")
    deadlines = raw if isinstance(raw, Mapping) else {}
    records = deadline_records.sync_deadline_records(
        conn, complaint_id, deadlines, data, known, clock.now(), audit)
    setattr(workflow, _DEADLINES, (complaint_id, records))
