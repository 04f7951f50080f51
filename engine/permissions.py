"""Who may do what: the one place that decides."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, true

from engine.audit import Actor
from engine.models import Complaint, HumanTask

#: Roles that see every need-to-know complaint (besides its owner).
NEED_TO_KNOW_ROLES = frozenset({"information_security_officer", "quality_manager"})


def may_work_on(actor: Actor, task: HumanTask) -> bool:
    """A task assigned to a person is theirs; otherwise it belongs to holders of its role."""
    if task.assignee:
        return actor.username == task.assignee
    return bool(task.role) and actor.has_role(task.role)


def may_deploy(actor: Actor) -> bool:
    return actor.has_role("process_owner") or actor.has_role("admin")


def may_inspect_instances(actor: Actor) -> bool:
    return actor.has_role("admin")


def may_record_complaint(actor: Actor) -> bool:
    """Everyone who handles complaints holds the staff role, and any of them may record one."""
    return actor.has_role("staff")


def may_see_complaint(actor: Actor, complaint: Complaint) -> bool:
    """The register is open to every signed-in user, except need-to-know complaints
    (personal data or a data breach: ISO 27001 A.5.26): those are seen only by their
    owner and by holders of NEED_TO_KNOW_ROLES. ``visible_complaints`` is the same rule
    in SQL, for lists and counts.
    """
    if not complaint.need_to_know:
        return True
    return complaint.owner == actor.username or bool(actor.roles & NEED_TO_KNOW_ROLES)


def visible_complaints(actor: Actor) -> ColumnElement[bool]:
    """``may_see_complaint`` as a WHERE clause over ``complaints``."""
    if actor.roles & NEED_TO_KNOW_ROLES:
        return true()
    return or_(Complaint.need_to_know == false(), Complaint.owner == actor.username)
