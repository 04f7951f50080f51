"""Roles of the interface, and how BPMN lanes map onto them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ROLES: tuple[str, ...] = (
    "staff",
    "operations_director",
    "complaint_owner",
    "quality_manager",
    "information_security_officer",
    "senior_management",
    "process_owner",
    "admin",
    "auditor",
)

#: Tasks in this lane go to the user named in the case's ``owner`` field.
COMPLAINT_OWNER_ROLE = "complaint_owner"


def role_label(role: str) -> str:
    """"quality_manager" -> "Quality Manager" (the lane name of the role)."""
    return role.replace("_", " ").title()


def normalise_lane(name: str | None) -> str | None:
    """Lane "Quality Manager" -> "quality_manager"; None for an empty lane name."""
    if not name or not name.strip():
        return None
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def role_for_lane(name: str | None) -> str | None:
    """The role a lane gives its tasks to, or None when the lane names no known role."""
    role = normalise_lane(name)
    return role if role in ROLES else None


def task_assignment(lane: str | None, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The role a human task in ``lane`` goes to, and its assignee given the case ``data``.

    A task in no lane goes to "staff"; a lane naming no known role gives None (deploy
    refuses such lanes). A Complaint Owner task is assigned to the user named in the
    case's ``owner``, when that is a non-empty string.
    """
    role = role_for_lane(lane) if lane else "staff"
    assignee = None
    if role == COMPLAINT_OWNER_ROLE:
        owner = data.get("owner")
        assignee = owner if isinstance(owner, str) and owner else None
    return role, assignee
