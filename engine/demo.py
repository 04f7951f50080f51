"""Demo users for `make run`: one per role, with a shared, printed development password."""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine.audit import Actor
from engine.users import create_user, get_user

DEMO_PASSWORD = "demo-password"

DEMO_USERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sam.staff", ("staff",)),
    ("olive.ops", ("staff", "operations_director")),
    ("owen.owner", ("staff", "complaint_owner")),
    ("quinn.quality", ("staff", "quality_manager")),
    ("isla.security", ("staff", "information_security_officer")),
    ("sofia.senior", ("staff", "senior_management")),
    ("paul.process", ("staff", "process_owner")),
    ("ada.admin", ("admin",)),
    ("aud.auditor", ("auditor",)),
)


def ensure_demo_users(session: Session, actor: Actor) -> list[str]:
    """Create the demo users that do not exist yet; describe all of them."""
    lines = []
    for username, roles in DEMO_USERS:
        if get_user(session, username) is None:
            create_user(session, username, DEMO_PASSWORD, list(roles),
                        f"{username}@example.invalid", actor)
        lines.append(f"{username:<15} password {DEMO_PASSWORD}  roles: {', '.join(roles)}")
    return lines
