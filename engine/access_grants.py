"""Need-to-know grants (issue 4 item 6): a need-to-know complaint opened to a named user.

A complaint with personal data or an information-security flag is visible only to its
owner, the Information Security Officer, the Quality Manager and the users granted
access on it here. Only those who may grant (engine.permissions.may_grant_access) grant
or revoke, and every grant and revocation is audited.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.errors import Forbidden, InvalidData, NotFound
from engine.models import Complaint, ComplaintAccessGrant
from engine.permissions import may_grant_access, may_see_complaint
from engine.users import get_user


def _complaint(session: Session, reference: str, actor: Actor) -> Complaint:
    complaint = session.scalars(
        select(Complaint).where(Complaint.reference == (reference or "").upper())).first()
    if complaint is None or not may_see_complaint(actor, complaint,
                                                   withholding_personal_data=True):
        raise NotFound(f"There is no complaint {reference}.")
    if not may_grant_access(actor, complaint):
        raise Forbidden("Only the owner, the Information Security Officer or the Quality "
                        "Manager may grant or revoke access to this complaint.")
    return complaint


def _active(session: Session, complaint_id: int, username: str) -> ComplaintAccessGrant | None:
    return session.scalars(select(ComplaintAccessGrant).where(
        ComplaintAccessGrant.complaint_id == complaint_id,
        ComplaintAccessGrant.username == username,
        ComplaintAccessGrant.revoked_at.is_(None))).first()


def active_grants(session: Session, complaint_id: int) -> list[ComplaintAccessGrant]:
    return list(session.scalars(select(ComplaintAccessGrant).where(
        ComplaintAccessGrant.complaint_id == complaint_id,
        ComplaintAccessGrant.revoked_at.is_(None)).order_by(
            ComplaintAccessGrant.granted_at, ComplaintAccessGrant.id)))


def grant_access(session: Session, reference: str, username: str, reason: str,
                 actor: Actor) -> ComplaintAccessGrant:
    """Open the complaint to ``username``; an active grant already there is kept."""
    complaint = _complaint(session, reference, actor)
    username = (username or "").strip()
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not username:
        errors["username"] = ["Give the username of the person to grant access to."]
    elif len(username) > 80 or get_user(session, username) is None:
        errors["username"] = [f"There is no user {username[:80]}."]
    if not reason:
        errors["reason"] = ["Give the reason this person needs to know."]
    elif len(reason) > 2000:
        errors["reason"] = ["Give the reason in at most 2000 characters."]
    if errors:
        raise InvalidData(" ".join(m for ms in errors.values() for m in ms), errors)
    existing = _active(session, complaint.id, username)
    if existing is not None:
        raise InvalidData(f"{username} already has access to {complaint.reference}.",
                          {"username": [f"{username} already has access."]})
    grant = ComplaintAccessGrant(complaint_id=complaint.id, username=username,
                                 granted_by=actor.username, granted_at=clock.now(),
                                 reason=reason)
    session.add(grant)
    session.flush()
    record(session, actor, "access_granted", instance_id=complaint.instance_id,
           details={"reference": complaint.reference, "username": username,
                    "reason": reason})
    return grant


def revoke_access(session: Session, reference: str, username: str,
                  actor: Actor) -> ComplaintAccessGrant:
    complaint = _complaint(session, reference, actor)
    grant = _active(session, complaint.id, (username or "").strip())
    if grant is None:
        raise InvalidData(f"{username} has no access to {complaint.reference} to revoke.")
    grant.revoked_at = clock.now()
    record(session, actor, "access_revoked", instance_id=complaint.instance_id,
           details={"reference": complaint.reference, "username": grant.username})
    return grant
