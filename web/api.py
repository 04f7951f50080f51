"""The JSON API under /api/v1 (see shared/interface.md); errors in one shape."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from engine.audit import Actor
from engine.calendar import iso
from engine.deploy import deploy_uploaded
from engine.documents import resolve_evidence
from engine.errors import Conflict, EngineError, Forbidden, InvalidData, NotFound
from engine.forms import evidence_fields, form_schema
from engine.inspection import describe_instance
from engine.instances import claim_task, complete_task, release_task
from engine.models import Complaint, HumanTask
from engine.permissions import (
    may_deploy,
    may_inspect_instances,
    may_see_complaint,
    may_see_personal_data,
    may_work_on,
)
from engine.register import COMPLAINANT_FIELDS, flatten_messages, record_complaint, record_reads
from engine.register_queries import (
    RegisterFilter,
    complaint_by_reference,
    deadline_records,
    deadline_states,
    register_page,
)
from web import queries
from web.auth import current_actor
from web.db import database_url, uow
from web.openapi import document as openapi_document
from web.schemas import CompleteTaskBody, DefinitionUpload, RegisterQuery

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)

#: Endpoints open without authentication.
PUBLIC_ENDPOINTS = frozenset({"api.health", "api.openapi"})

_ENGINE_STATUS: tuple[tuple[type[EngineError], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (InvalidData, 422),
)


class BadRequestBody(Exception):
    """The request body is not JSON, or not a JSON object."""


def is_api_request() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def error_response(status: int, code: str, message: str,
                   fields_: dict[str, list[str]] | None = None) -> tuple[Response, int]:
    body = {"error": {"code": code, "message": message, "fields": fields_ or {}}}
    response = jsonify(body)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="complaints"'
    return response, status


@bp.before_request
def _require_user() -> tuple[Response, int] | None:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return error_response(401, "unauthorized",
                          "sign in, or send a valid token in 'Authorization: Bearer TOKEN'")


@bp.errorhandler(EngineError)
def _engine_error(error: EngineError) -> tuple[Response, int]:
    status = next((s for cls, s in _ENGINE_STATUS if isinstance(error, cls)), 400)
    return error_response(status, error.code, str(error), getattr(error, "fields", None))


@bp.errorhandler(BadRequestBody)
def _bad_body(error: BadRequestBody) -> tuple[Response, int]:
    return error_response(400, "bad_request", str(error))


@bp.errorhandler(ValidationError)
def _invalid_body(error: ValidationError) -> tuple[Response, int]:
    return error_response(422, "invalid", "the request body has errors",
                          flatten_messages(error.normalized_messages()))


def _json_object() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise BadRequestBody("the request body must be valid JSON")
    if not isinstance(body, dict):
        raise BadRequestBody("the request body must be a JSON object")
    return body


def task_json(row: HumanTask) -> dict[str, Any]:
    return {
        "id": row.id,
        "instance_id": row.instance_id,
        "bpmn_id": row.bpmn_id,
        "title": row.title,
        "role": row.role,
        "assignee": row.assignee,
        "claimed_by": row.claimed_by,
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "state": row.state,
        "instructions": row.instructions,
    }


def _visible_task(session: Session, task_id: str, actor: Actor) -> HumanTask:
    """The task, if the caller may see it (404 otherwise: it does not exist for them)."""
    row = queries.task_by_id(session, task_id)
    if row is None or not (may_work_on(actor, row) or row.claimed_by == actor.username):
        raise NotFound(f"there is no task {task_id!r}")
    return row


def _iso(instant: datetime | None) -> str | None:
    return iso(instant) if instant is not None else None


def record_with_deadline_states(session, row: Complaint, personal: bool = True,
                                ) -> dict[str, Any]:
    """One record (``POST`` and ``GET /complaints/...``) with ``deadline_states``: each
    deadline's state now (engine.deadlines) and when it was met or its miss recorded."""
    record = complaint_json(row, personal)
    record["deadline_states"] = [
        {"name": d.name, "due_at": _iso(d.due), "state": d.code, "met_at": _iso(d.met_at),
         "missed_at": _iso(d.missed_at)}
        for d in deadline_states(row, records=deadline_records(session, row.id))]
    return record


#: What stands for a value withheld from the reader (as on the pages and in the export).
WITHHELD = "(withheld)"


def complaint_json(row: Complaint, personal: bool = True) -> dict[str, Any]:
    """A register record with the interface's field names (shared/interface.md).

    ``personal`` False (engine.permissions.may_see_personal_data refused: an auditor
    reading a need-to-know case) withholds the complainant's details: each given one
    reads WITHHELD, and ``personal_data_withheld`` is true."""
    complainant = {key: getattr(row, f"complainant_{key}") for key in COMPLAINANT_FIELDS}
    if not personal:
        complainant = {key: WITHHELD if value else None for key, value in complainant.items()}
    return {
        "reference": row.reference,
        "channel": row.channel,
        "received_at": _iso(row.received_at),
        "complainant": complainant,
        "personal_data_withheld": not personal,
        "summary": row.summary,
        "description": row.description,
        "product_or_service": row.product_or_service,
        "remedy_sought": row.remedy_sought,
        "classification": row.classification,
        "personal_data_involved": row.personal_data_involved,
        "data_breach": row.data_breach,
        "owner": row.owner,
        "root_cause": row.root_cause,
        "corrective_action": row.corrective_action,
        "remedial_measures": row.remedial_measures,
        "resolution_summary": row.resolution_summary,
        "status": row.status,
        "deadlines": dict(row.deadlines or {}),
        "logged_at": _iso(row.logged_at),
        "acknowledged_at": _iso(row.acknowledged_at),
        "resolved_at": _iso(row.resolved_at),
        "closed_at": _iso(row.closed_at),
        "need_to_know": row.need_to_know,
        "instance_id": row.instance_id,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _audit_reads(actor: Actor, rows: list[Complaint], via: str) -> None:
    """Reads of need-to-know complaints are audited before the response leaves."""
    if any(row.need_to_know for row in rows):
        with uow() as work:
            record_reads(work.session, actor, rows, via)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.get("/health")
def health() -> tuple[Response, int]:
    if queries.database_answers(database_url()):
        return jsonify({"status": "ok"}), 200
    return jsonify({"status": "unavailable"}), 503


@bp.get("/tasks")
def list_tasks() -> Response:
    with uow(write=False) as work:
        rows = queries.ready_tasks_for(work.session, current_user.username,
                                       current_user.role_names)
        return jsonify([task_json(r) for r in rows])


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> Response:
    with uow(write=False) as work:
        row = _visible_task(work.session, task_id, current_actor())
        instance = queries.instance_by_id(work.session, row.instance_id)
        body = task_json(row)
        body["form"] = form_schema(instance.definition.sources, row.form) if instance else None
        return jsonify(body)


def _change_claim(task_id: str, change) -> Response:
    actor = current_actor()
    with uow() as work:
        _visible_task(work.session, task_id, actor)
        body = task_json(change(work, task_id, actor))
    return jsonify(body)


@bp.post("/tasks/<task_id>/claim")
def claim(task_id: str) -> Response:
    return _change_claim(task_id, claim_task)


@bp.post("/tasks/<task_id>/release")
def release(task_id: str) -> Response:
    return _change_claim(task_id, release_task)


def _evidence_resolved(session: Session, row: HumanTask, data: Any) -> Any:
    """Evidence fields name documents already kept with the task's complaint (by
    ``document_id``); engine.documents.resolve_evidence checks them and fills in names."""
    instance = queries.instance_by_id(session, row.instance_id)
    schema = form_schema(instance.definition.sources, row.form) if instance else None
    if not evidence_fields(schema):
        return data
    complaint = queries.complaint_by_instance(session, row.instance_id)
    return resolve_evidence(session, complaint.id if complaint else None, schema, data)


@bp.post("/tasks/<task_id>/complete")
def complete(task_id: str) -> Response:
    payload = CompleteTaskBody().load(_json_object())
    actor = current_actor()
    with uow() as work:
        row = _visible_task(work.session, task_id, actor)
        data = _evidence_resolved(work.session, row, payload["data"])
        instance = complete_task(work, task_id, data, actor)
        body = {
            "instance": {"id": instance.id, "status": instance.status},
            "next_tasks": [task_json(r)
                           for r in queries.ready_tasks_of_instance(work.session, instance.id)],
        }
    return jsonify(body)


# -- the Complaints Register ---------------------------------------------------------------

@bp.post("/complaints")
def create_complaint() -> tuple[Response, int]:
    body = _json_object()
    actor = current_actor()
    with uow() as work:
        row = record_complaint(work, body, actor)
        record = record_with_deadline_states(work.session, row)
    response = jsonify(record)
    response.headers["Location"] = url_for("api.get_complaint", reference=row.reference)
    return response, 201


@bp.get("/complaints")
def list_complaints() -> Response:
    # An empty parameter (a filter left blank in a form) is no filter.
    params = RegisterQuery().load({k: v for k, v in request.args.items() if v != ""})
    actor = current_actor()
    with uow(write=False) as work:
        where = RegisterFilter(status=params.get("status"),
                               classification=params.get("classification"),
                               channel=params.get("channel"), q=params.get("q"))
        # Auditors see need-to-know complaints too, with the personal data withheld.
        rows, total = register_page(work.session, actor, where, params["page"],
                                    params["per_page"], withholding_personal_data=True)
        items = [complaint_json(row, may_see_personal_data(actor, row)) for row in rows]
    _audit_reads(actor, rows, "register")
    return jsonify({"items": items, "page": params["page"], "per_page": params["per_page"],
                    "total": total})


@bp.get("/complaints/<reference>")
def get_complaint(reference: str) -> Response:
    actor = current_actor()
    with uow(write=False) as work:
        row = complaint_by_reference(work.session, reference)
        if row is None or not may_see_complaint(actor, row, withholding_personal_data=True):
            raise NotFound(f"there is no complaint {reference!r}")
        record = record_with_deadline_states(work.session, row,
                                             may_see_personal_data(actor, row))
    _audit_reads(actor, [row], "record")
    return jsonify(record)


# -- administration ------------------------------------------------------------------------

@bp.get("/instances/<int:instance_id>")
def get_instance(instance_id: int) -> Response:
    actor = current_actor()
    if not may_inspect_instances(actor):
        raise Forbidden("inspecting process instances needs the admin role")
    with uow(write=False) as work:
        return jsonify(describe_instance(work, instance_id, actor))


@bp.post("/definitions")
def deploy_definitions() -> tuple[Response, int]:
    actor = current_actor()
    if not may_deploy(actor):
        raise Forbidden("deploying definitions needs the process_owner or admin role")
    body: dict[str, Any] = request.form.to_dict()
    for name in request.files:
        body[name] = request.files.getlist(name)
    upload = DefinitionUpload().load(body)
    files: dict[str, bytes] = {}
    for part in upload["files"]:
        name = PurePosixPath(part.filename.replace("\\", "/")).name
        if name in files:
            raise InvalidData("two uploaded files have the same name",
                              {"files": [f"{name}: uploaded twice"]})
        files[name] = part.read()
    with uow() as work:
        result = deploy_uploaded(work.session, files, actor, upload["change_note"])
        if not result.ok:
            raise InvalidData("the definitions have errors; nothing was deployed",
                              {"files": [str(problem) for problem in result.problems]})
    return jsonify([{"process_id": d.process_id, "version": d.version, "sha256": d.sha256,
                     "changed": d.changed} for d in result.deployed]), 201
