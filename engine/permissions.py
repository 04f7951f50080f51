"""Who may do what: the one place that decides."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, or_, select, true
from sqlalchemy.orm import object_session

from engine.audit import Actor
from engine.models import Complaint, ComplaintAccessGrant, HumanTask

#: Roles that see every need-to-know complaint (besides its owner).
NEED_TO_KNOW_ROLES = frozenset({"information_security_officer", "quality_manager"})

#: Roles that read the whole register, need-to-know complaints included, but never the
#: personal data of a need-to-know complaint (ISO 27001 A.5.35: independent review).
#: Only readers that withhold that data (the register pages) grant it: see
#: ``may_see_complaint(..., withholding_personal_data=True)``.
REVIEW_ROLES = frozenset({"auditor"})


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


def may_see_complaint(actor: Actor, complaint: Complaint, *,
                      withholding_personal_data: bool = False) -> bool:
    """The register is open to every signed-in user, except need-to-know complaints
    (personal data or a data breach: ISO 27001 A.5.26): those are seen only by their
    owner, by holders of NEED_TO_KNOW_ROLES and by users with an active access grant on
    the complaint (engine/access_grants.py). ``visible_complaints`` is the same rule in
    SQL, for lists and counts.

    A reader that withholds the personal data of the complaints it shows (the caller
    passes ``withholding_personal_data=True`` and masks what ``may_see_personal_data``
    refuses) also shows need-to-know complaints to holders of REVIEW_ROLES.
    """
    if may_see_personal_data(actor, complaint):
        return True
    return withholding_personal_data and bool(actor.roles & REVIEW_ROLES)


def may_see_personal_data(actor: Actor, complaint: Complaint) -> bool:
    """The complainant's details: anyone for an ordinary complaint; for a need-to-know
    one, only its owner, holders of NEED_TO_KNOW_ROLES and users granted access on it
    (never REVIEW_ROLES as such)."""
    if not complaint.need_to_know:
        return True
    if complaint.owner == actor.username or actor.roles & NEED_TO_KNOW_ROLES:
        return True
    return _has_active_grant(actor, complaint)


def may_grant_access(actor: Actor, complaint: Complaint) -> bool:
    """Who may open a complaint to another user, or close it again: its owner, the
    Information Security Officer and the Quality Manager."""
    return complaint.owner == actor.username or bool(actor.roles & NEED_TO_KNOW_ROLES)


def _has_active_grant(actor: Actor, complaint: Complaint) -> bool:
    session = object_session(complaint)
    if session is None or complaint.id is None:
        return False
    return bool(session.scalar(select(_active_grant(actor.username, complaint.id))))


def _active_grant(username: str, complaint_id) -> ColumnElement[bool]:
    return exists().where(ComplaintAccessGrant.complaint_id == complaint_id,
                          ComplaintAccessGrant.username == username,
                          ComplaintAccessGrant.revoked_at.is_(None))


def visible_complaints(actor: Actor, *,
                       withholding_personal_data: bool = False) -> ColumnElement[bool]:
    """``may_see_complaint`` as a WHERE clause over ``complaints``."""
    if actor.roles & NEED_TO_KNOW_ROLES:
        return true()
    if withholding_personal_data and actor.roles & REVIEW_ROLES:
        return true()
    return personal_data_visible(actor)


def personal_data_visible(actor: Actor) -> ColumnElement[bool]:
    """``may_see_personal_data`` as a WHERE clause over ``complaints``."""
    if actor.roles & NEED_TO_KNOW_ROLES:
        return true()
    return or_(Complaint.need_to_know == false(), Complaint.owner == actor.username,
               _active_grant(actor.username, Complaint.id))


# -- process definitions and their annual review (engine/governance.py, engine/reviews.py) --

#: Roles that see the definitions list, a process's versions and its review records.
DEFINITION_READER_ROLES = frozenset({"process_owner", "admin", "quality_manager", "auditor",
                                     "senior_management"})


def may_view_definitions(actor: Actor) -> bool:
    return bool(actor.roles & DEFINITION_READER_ROLES)


def may_download_definition(actor: Actor) -> bool:
    """A version's files (BPMN, DMN, forms): process owners and admins."""
    return actor.has_role("process_owner") or actor.has_role("admin")


def may_change_governance(actor: Actor) -> bool:
    """A process's owner and review interval: admins and the Quality Manager."""
    return actor.has_role("admin") or actor.has_role("quality_manager")


def may_start_review(actor: Actor) -> bool:
    """Starting the annual review of a process: process owners and the Quality Manager
    (and admins)."""
    return bool(actor.roles & {"process_owner", "quality_manager", "admin"})


def may_change_owner(actor: Actor) -> bool:
    """Giving a running case another Complaint Owner (policy 5.2, 8.1): the Quality
    Manager, the Operations Director and admins."""
    return bool(actor.roles & {"quality_manager", "operations_director", "admin"})
