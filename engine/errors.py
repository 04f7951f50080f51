"""Errors the engine raises to its callers; the web layer maps each to one HTTP status."""

from __future__ import annotations


class EngineError(Exception):
    code = "error"


class NotFound(EngineError):
    code = "not_found"


class Forbidden(EngineError):
    code = "forbidden"


class Conflict(EngineError):
    """The state changed under the caller: task no longer ready, claimed, stale version."""

    code = "conflict"


class InvalidData(EngineError):
    """Data that does not satisfy a form or a rule; ``fields`` maps field -> messages."""

    code = "invalid"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.fields = fields or {}
