"""The OpenAPI 3.1 description of the JSON API (served at ``GET /api/v1/openapi.json``).

Hand-written next to the routes it describes; tests/test_api_complaints.py checks that
every route under /api/v1 is here with its methods, and nothing else is.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from engine.register import CHANNELS, CLASSIFICATIONS, STATUSES, SUMMARY_MAX
from web.schemas import DEFAULT_PER_PAGE, MAX_PER_PAGE


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": _json(schema)}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
             409: "Conflict", 422: "Invalid"}
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}


_INSTANT = {"type": "string", "format": "date-time",
            "description": "ISO-8601 instant in UTC, e.g. 2026-12-21T14:30:00+00:00"}
_TEXT = {"type": "string"}
_NULLABLE_TEXT = _nullable(_TEXT)
_NULLABLE_INSTANT = _nullable(_INSTANT)


def _schemas() -> dict[str, Any]:
    complainant = {
        "type": "object",
        "description": "Personal data.",
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "email": _nullable({"type": "string", "format": "email", "maxLength": 254}),
            "phone": _nullable({"type": "string", "maxLength": 40}),
            "postal_address": _nullable({"type": "string", "maxLength": 1000}),
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    complaint_properties = {
        "reference": {"type": "string", "pattern": r"^CMP-\d{4}-\d{6,}$",
                      "example": "CMP-2026-000042"},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "received_at": _INSTANT,
        "complainant": {**complainant, "required": list(complainant["properties"])},
        "personal_data_withheld": {
            "type": "boolean",
            "description": "true when the reader may not see this need-to-know case's "
                           "personal data (the auditor): each given complainant detail "
                           "then reads \"(withheld)\""},
        "summary": _TEXT,
        "description": _TEXT,
        "product_or_service": _NULLABLE_TEXT,
        "remedy_sought": _NULLABLE_TEXT,
        "classification": _nullable({"type": "string", "enum": list(CLASSIFICATIONS)}),
        "personal_data_involved": _nullable({"type": "boolean"}),
        "data_breach": _nullable({"type": "boolean"}),
        "owner": _nullable({"type": "string", "description": "username"}),
        "root_cause": _NULLABLE_TEXT,
        "corrective_action": _NULLABLE_TEXT,
        "remedial_measures": _NULLABLE_TEXT,
        "resolution_summary": _NULLABLE_TEXT,
        "status": {"type": "string", "enum": list(STATUSES)},
        "deadlines": {"type": "object", "additionalProperties": _INSTANT,
                      "description": "log_by, acknowledge_by and the others the process sets"},
        "logged_at": _NULLABLE_INSTANT,
        "acknowledged_at": _NULLABLE_INSTANT,
        "resolved_at": _NULLABLE_INSTANT,
        "closed_at": _NULLABLE_INSTANT,
        "need_to_know": {
            "type": "boolean",
            "description": "personal data or a data breach: visible only to the owner, the "
                           "Information Security Officer and the Quality Manager"},
        "instance_id": {"type": "integer"},
        "created_at": _INSTANT,
        "updated_at": _INSTANT,
    }
    task = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "instance_id": {"type": "integer"},
            "bpmn_id": _TEXT,
            "title": _TEXT,
            "role": _NULLABLE_TEXT,
            "assignee": _NULLABLE_TEXT,
            "claimed_by": _NULLABLE_TEXT,
            "due_at": _NULLABLE_INSTANT,
            "state": {"type": "string", "enum": ["ready", "completed", "cancelled"]},
            "instructions": {**_NULLABLE_TEXT, "description":
                             "what to do, from the diagram, as HTML-escaped text"},
        },
        "required": ["id", "instance_id", "bpmn_id", "title", "role", "assignee",
                     "claimed_by", "due_at", "state", "instructions"],
    }
    return {
        "Error": {
            "type": "object",
            "properties": {"error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "examples": ["invalid", "not_found"]},
                    "message": {"type": "string"},
                    "fields": {"type": "object",
                               "additionalProperties": {"type": "array",
                                                        "items": {"type": "string"}},
                               "description": "field name (dotted when nested) -> messages"},
                },
                "required": ["code", "message", "fields"],
            }},
            "required": ["error"],
        },
        "Task": task,
        "TaskWithForm": {"allOf": [task, {
            "type": "object",
            "properties": {"form": _nullable({"type": "object",
                                              "description": "the task's JSON Schema form"})},
            "required": ["form"],
        }]},
        "CompleteTaskBody": {
            "type": "object",
            "properties": {"data": {"type": "object", "description": (
                "the form's field values; an evidence field (\"format\": \"evidence\") "
                "takes [{\"document_id\": N}, ...] naming documents already kept with "
                "the case (the file names are filled in from them)")}},
            "required": ["data"],
            "additionalProperties": False,
        },
        "Completion": {
            "type": "object",
            "properties": {
                "instance": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "status": {"type": "string"}}},
                "next_tasks": {"type": "array", "items": _ref("Task")},
            },
            "required": ["instance", "next_tasks"],
        },
        "ComplaintInput": {
            "type": "object",
            "description": "What is known on receipt; the process sets the other fields.",
            "properties": {
                "channel": {"type": "string", "enum": list(CHANNELS)},
                "received_at": {**_INSTANT, "description": (
                    "when the complaint reached the company, with a zone; default now; "
                    "never in the future")},
                "complainant": complainant,
                "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_MAX},
                "description": {"type": "string", "minLength": 1},
                "product_or_service": _nullable({"type": "string", "maxLength": 200}),
                "remedy_sought": _NULLABLE_TEXT,
                "personal_data_involved": _nullable({"type": "boolean"}),
            },
            "required": ["channel", "complainant", "summary", "description"],
            "additionalProperties": False,
        },
        "Complaint": {"type": "object", "properties": complaint_properties,
                      "required": list(complaint_properties)},
        "ComplaintWithDeadlineStates": {"allOf": [_ref("Complaint"), {
            "type": "object",
            "properties": {"deadline_states": {"type": "array", "items": {
                "type": "object",
                "description": "each deadline with its state now (earliest first); met_at "
                               "is when it was met, missed_at when its miss was recorded",
                "properties": {
                    "name": _TEXT,
                    "due_at": _INSTANT,
                    "state": {"type": "string", "enum": ["on_time", "due_soon", "overdue",
                                                         "met_late", "met"]},
                    "met_at": _NULLABLE_INSTANT,
                    "missed_at": _NULLABLE_INSTANT,
                },
                "required": ["name", "due_at", "state", "met_at", "missed_at"]}}},
            "required": ["deadline_states"]}]},
        "RegisterPage": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": _ref("Complaint")},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                "total": {"type": "integer", "minimum": 0},
            },
            "required": ["items", "page", "per_page", "total"],
        },
        "Instance": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "process_id": _TEXT,
                "version": {"type": "integer"},
                "sha256": _TEXT,
                "status": {"type": "string",
                           "enum": ["running", "complete", "error", "suspended",
                                    "terminated"]},
                "reference": _NULLABLE_TEXT,
                "created_by": _NULLABLE_TEXT,
                "created_at": _INSTANT,
                "updated_at": _INSTANT,
                "completed_at": _NULLABLE_INSTANT,
                "next_due_at": _NULLABLE_INSTANT,
                "error": _nullable({"type": "object", "properties": {
                    "message": _TEXT, "task_id": _NULLABLE_TEXT, "bpmn_id": _NULLABLE_TEXT}}),
                "tasks": {"type": "array", "items": {"type": "object", "properties": {
                    "id": _TEXT, "bpmn_id": _TEXT, "name": _NULLABLE_TEXT, "type": _TEXT,
                    "process_id": _TEXT, "state": _TEXT, "last_state_change": _INSTANT}}},
                "timers": {"type": "array", "items": {"type": "object", "properties": {
                    "task_id": _TEXT, "bpmn_id": _TEXT, "name": _NULLABLE_TEXT, "type": _TEXT,
                    "due_at": _NULLABLE_INSTANT}}},
                "history": {"type": "array", "items": {"type": "object", "properties": {
                    "at": _INSTANT, "actor": _NULLABLE_TEXT, "address": _NULLABLE_TEXT,
                    "action": _TEXT, "task_id": _NULLABLE_TEXT,
                    "details": {"type": "object"}}}},
            },
        },
        "DefinitionUpload": {
            "type": "object",
            "properties": {
                "files": {"type": "array", "minItems": 1,
                          "items": {"type": "string", "format": "binary"},
                          "description": "BPMN, DMN and JSON form files"},
                "change_note": {"type": "string", "maxLength": 2000},
            },
            "required": ["files"],
        },
        "DeployedVersion": {
            "type": "object",
            "properties": {"process_id": _TEXT, "version": {"type": "integer"},
                           "sha256": _TEXT, "changed": {"type": "boolean"}},
            "required": ["process_id", "version", "sha256", "changed"],
        },
    }


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


_TASK_ID = {"name": "task_id", "in": "path", "required": True,
            "schema": {"type": "string", "format": "uuid"}}


def _paths() -> dict[str, Any]:
    task_action_errors = _errors(400, 401, 404, 409)
    return {
        "/health": {"get": {
            "summary": "Whether the database answers",
            "security": [],
            "responses": {
                **_ok("the database answers", {"type": "object", "properties": {
                    "status": {"const": "ok"}}}),
                "503": {"description": "the database does not answer", "content": _json(
                    {"type": "object", "properties": {"status": {"const": "unavailable"}}})},
            },
        }},
        "/openapi.json": {"get": {
            "summary": "This description",
            "security": [],
            "responses": _ok("the OpenAPI document", {"type": "object"}),
        }},
        "/tasks": {"get": {
            "summary": "Ready user tasks the caller may work on",
            "responses": {**_ok("the tasks, soonest due first",
                                {"type": "array", "items": _ref("Task")}),
                          **_errors(401)},
        }},
        "/tasks/{task_id}": {"get": {
            "summary": "One task, with its form as JSON Schema under form",
            "parameters": [_TASK_ID],
            "responses": {**_ok("the task", _ref("TaskWithForm")), **_errors(401, 404)},
        }},
        "/tasks/{task_id}/claim": {"post": {
            "summary": "Take the task; 409 if someone else holds it",
            "parameters": [_TASK_ID],
            "responses": {**_ok("the claimed task", _ref("Task")), **task_action_errors},
        }},
        "/tasks/{task_id}/release": {"post": {
            "summary": "Give a claimed task back",
            "parameters": [_TASK_ID],
            "responses": {**_ok("the released task", _ref("Task")), **task_action_errors},
        }},
        "/tasks/{task_id}/complete": {"post": {
            "summary": "Complete the task with its form's data",
            "parameters": [_TASK_ID],
            "requestBody": {"required": True, "content": _json(_ref("CompleteTaskBody"))},
            "responses": {**_ok("the case's next open tasks", _ref("Completion")),
                          **_errors(400, 401, 403, 404, 409, 422)},
        }},
        "/complaints": {
            "get": {
                "summary": "The Complaints Register, newest receipt first",
                "description": "Need-to-know complaints are left out (and not counted) "
                               "for callers who may not see them; reading one is audited.",
                "parameters": [
                    {"name": "status", "in": "query",
                     "schema": {"type": "string", "enum": list(STATUSES)}},
                    {"name": "classification", "in": "query",
                     "schema": {"type": "string", "enum": list(CLASSIFICATIONS)}},
                    {"name": "channel", "in": "query",
                     "schema": {"type": "string", "enum": list(CHANNELS)}},
                    {"name": "q", "in": "query", "description": (
                        "case-insensitive text in the reference, summary or complainant name"),
                     "schema": {"type": "string", "maxLength": 200}},
                    {"name": "page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "default": 1}},
                    {"name": "per_page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                                "default": DEFAULT_PER_PAGE}},
                ],
                "responses": {**_ok("one page of the register", _ref("RegisterPage")),
                              **_errors(401, 422)},
            },
            "post": {
                "summary": "Record a new complaint and start its process (staff role)",
                "requestBody": {"required": True, "content": _json(_ref("ComplaintInput"))},
                "responses": {
                    **_ok("the recorded complaint", _ref("ComplaintWithDeadlineStates"),
                          "201"),
                    **_errors(400, 401, 403, 422),
                },
            },
        },
        "/complaints/{reference}": {"get": {
            "summary": "One complaint of the register",
            "parameters": [{"name": "reference", "in": "path", "required": True,
                            "schema": {"type": "string"}, "example": "CMP-2026-000042"}],
            "responses": {**_ok("the complaint", _ref("ComplaintWithDeadlineStates")),
                          **_errors(401, 404)},
        }},
        "/instances/{instance_id}": {"get": {
            "summary": "A process instance as the engine sees it (admin)",
            "parameters": [{"name": "instance_id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {**_ok("definition and version, status, tasks, timers, error and "
                                "history", _ref("Instance")),
                          **_errors(401, 403, 404)},
        }},
        "/definitions": {"post": {
            "summary": "Deploy uploaded BPMN/DMN files and forms (process_owner or admin)",
            "description": "All or nothing: any problem in any file deploys nothing and "
                           "comes back as FILE:LINE: message under fields.files.",
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": _ref("DefinitionUpload")}}},
            "responses": {
                **_ok("one entry per process in the files", {
                    "type": "array", "items": _ref("DeployedVersion")}, "201"),
                **_errors(401, 403, 422),
            },
        }},
    }


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Complaints API",
            "version": "1",
            "description": "Customer complaints: the register, tasks of the complaints "
                           "process, instances and definitions. Errors are "
                           '{"error": {"code", "message", "fields"}}.',
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a token from `complaints tokens create USERNAME`"},
                "session": {"type": "apiKey", "in": "cookie", "name": "complaints_session",
                            "description": "the browser session; changes need the "
                                           "X-CSRF-Token header"},
            },
            "schemas": _schemas(),
            "responses": {
                "BadRequest": _error_response("malformed request (not JSON, no CSRF token)"),
                "Unauthorized": _error_response("no valid token or session"),
                "Forbidden": _error_response("the caller's roles do not allow this"),
                "NotFound": _error_response("no such thing, or not visible to the caller"),
                "Conflict": _error_response(
                    "the state changed: task no longer ready, claimed by someone else, "
                    "stale version"),
                "Invalid": _error_response("validation failed; fields says which"),
            },
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())
