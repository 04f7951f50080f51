"""Demo users for `make run`: one per role, with a shared, printed development password."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import governance
from engine.audit import Actor
from engine.models import ProcessGovernance
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
#: Owns the deployed processes that have no owner yet (their annual review is theirs).
DEMO_PROCESS_OWNER = "paul.process"


def ensure_demo_users(session: Session, actor: Actor) -> list[str]:
    """Create the demo users that do not exist yet; describe all of them."""
    lines = []
    for username, roles in DEMO_USERS:
        if get_user(session, username) is None:
            create_user(session, username, DEMO_PASSWORD, list(roles),
                        f"{username}@example.invalid", actor)
        lines.append(f"{username:<15} password {DEMO_PASSWORD}  roles: {', '.join(roles)}")
    return lines


def ensure_demo_owners(session: Session, actor: Actor) -> list[str]:
    """Give every deployed process without an owner the demo process owner; their ids.

    Done as the Quality Manager would on the definitions page (audited the same way)."""
    governance.ensure_all(session, actor)
    unowned = session.scalars(
        select(ProcessGovernance).where(ProcessGovernance.owner.is_(None))).all()
    quality_manager = Actor(actor.username, frozenset({"quality_manager"}))
    for row in unowned:
        governance.set_governance(session, row.process_id, DEMO_PROCESS_OWNER,
                                  row.review_interval_months, quality_manager)
    return [row.process_id for row in unowned]
