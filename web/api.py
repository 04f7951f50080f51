"""The JSON API under /api/v1 (see shared/interface.md); errors in one shape."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from engine.audit import Actor
from engine.errors import Conflict, EngineError, Forbidden, InvalidData, NotFound
from engine.forms import form_schema
from engine.instances import claim_task, complete_task, release_task
from engine.models import HumanTask
from engine.permissions import may_work_on
from web import queries
from web.auth import current_actor
from web.db import database_url, uow

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)

#: Endpoints open without authentication.
PUBLIC_ENDPOINTS = frozenset({"api.health"})

_ENGINE_STATUS: tuple[tuple[type[EngineError], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (InvalidData, 422),
)


class BadRequestBody(Exception):
    """The request body is not JSON, or not a JSON object."""


class CompleteTaskBody(Schema):
    data = fields.Dict(keys=fields.String(), required=True)


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
                          _flatten(error.normalized_messages()))


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"a.b": ["..."]}, the interface's ``fields``."""
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
        return out
    if isinstance(messages, list | tuple):
        return {prefix or "_body": [str(m) for m in messages]}
    return {prefix or "_body": [str(messages)]}


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
    }


def _visible_task(session: Session, task_id: str, actor: Actor) -> HumanTask:
    """The task, if the caller may see it (404 otherwise: it does not exist for them)."""
    row = queries.task_by_id(session, task_id)
    if row is None or not (may_work_on(actor, row) or row.claimed_by == actor.username):
        raise NotFound(f"there is no task {task_id!r}")
    return row


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


@bp.post("/tasks/<task_id>/claim")
def claim(task_id: str) -> Response:
    actor = current_actor()
    with uow() as work:
        _visible_task(work.session, task_id, actor)
        row = claim_task(work, task_id, actor)
        body = task_json(row)
    return jsonify(body)


@bp.post("/tasks/<task_id>/release")
def release(task_id: str) -> Response:
    actor = current_actor()
    with uow() as work:
        _visible_task(work.session, task_id, actor)
        row = release_task(work, task_id, actor)
        body = task_json(row)
    return jsonify(body)


@bp.post("/tasks/<task_id>/complete")
def complete(task_id: str) -> Response:
    payload = CompleteTaskBody().load(_json_object())
    actor = current_actor()
    with uow() as work:
        _visible_task(work.session, task_id, actor)
        instance = complete_task(work, task_id, payload["data"], actor)
        body = {
            "instance": {"id": instance.id, "status": instance.status},
            "next_tasks": [task_json(r)
                           for r in queries.ready_tasks_of_instance(work.session, instance.id)],
        }
    return jsonify(body)
