"""The audit trail: append-only events written in the transaction of what they record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy.orm import Session

from engine import clock
from engine.models import AuditEvent
from engine.prepared import Prepared


@dataclass(frozen=True)
class Actor:
    """Who does something: a user with roles, or the system (worker, deploy)."""

    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    address: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles


SYSTEM = Actor("system", frozenset({"admin"}))


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    instance_id: int | None = None,
    task_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=clock.now(),
        actor=actor.username if actor else None,
        address=actor.address if actor else None,
        action=action,
        instance_id=instance_id,
        task_id=task_id,
        details=details or {},
    )
    session.add(event)
    return event


_INSERT_EVENTS = Prepared(insert(AuditEvent.__table__).values(
    {name: bindparam(name)
     for name in ("at", "actor", "address", "action", "instance_id", "task_id", "details")}))


class AuditBatch:
    """Events of one step, written with a single multi-row INSERT at its end."""

    def __init__(self, actor: Actor | None, instance_id: int | None = None):
        self.actor = actor
        self.instance_id = instance_id
        self._rows: list[dict[str, Any]] = []

    def add(self, action: str, *, task_id: str | None = None, **details: Any) -> None:
        self._rows.append({
            "at": clock.now(),
            "actor": self.actor.username if self.actor else None,
            "address": self.actor.address if self.actor else None,
            "action": action,
            "instance_id": self.instance_id,
            "task_id": task_id,
            "details": details,
        })

    def write(self, conn: Connection) -> None:
        if self._rows:
            _INSERT_EVENTS.execute_many(conn, self._rows)
            self._rows = []
