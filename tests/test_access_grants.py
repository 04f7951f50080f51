"""Need-to-know access grants (issue 4 item 6), on SQLite and (when configured) PostgreSQL.

A need-to-know complaint is visible only to its owner, the Information Security
Officer, the Quality Manager and users granted access on it; grants are audited.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.access_grants import active_grants, grant_access
from engine.db import unit_of_work
from engine.errors import Forbidden, InvalidData
from engine.models import AuditEvent, Complaint
from web.api import PREFIX

from . import test_pages_register as pages
from .test_api_complaints import EVERYONE
from .test_pages_inbox import sign_in
from .test_pages_register import exported, listed, page

db = pages.db
client = pages.client
auth = pages.auth
secret = pages.secret


def grant(client, auth, reference, user="owen", username="sam", reason="Handles the refund"):
    return client.post(f"/complaints/{reference}/access", headers=auth[user],
                       data={"username": username, "reason": reason})


def revoke(client, auth, reference, user="owen", username="sam"):
    return client.post(f"/complaints/{reference}/access/{username}/revoke",
                       headers=auth[user])


def sees(client, auth, reference, user="sam") -> bool:
    in_list = reference in listed(page(client, auth, user))
    in_export = reference in [row[0] for row in exported(client, auth, user)]
    status = client.get(f"/complaints/{reference}", headers=auth[user]).status_code
    assert in_list == in_export == (status == 200), (in_list, in_export, status)
    return in_list


def events(db, action):
    with unit_of_work(db, write=False) as work:
        return [(e.actor, e.details) for e in work.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


def test_a_granted_user_sees_the_case_until_the_grant_is_revoked(client, auth, secret, db):
    assert not sees(client, auth, secret)
    assert client.get(f"/complaints/{secret}", headers=auth["sam"]).status_code == 404

    response = grant(client, auth, secret)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/complaints/{secret}")
    owner_page = client.get(f"/complaints/{secret}", headers=auth["owen"]).get_data(as_text=True)
    assert "sam may now see this case." in owner_page
    assert "Handles the refund" in owner_page
    assert "Revoke access of sam" in owner_page

    assert sees(client, auth, secret)
    case = client.get(f"/complaints/{secret}", headers=auth["sam"]).get_data(as_text=True)
    assert "Account details sent to a stranger" in case
    assert "zed@example.org" in case  # the grant opens the personal data too
    assert "Grant access" not in case  # a grantee may not grant further
    assert not sees(client, auth, secret, "sue")  # the grant is for sam only

    assert revoke(client, auth, secret, user="isla").status_code == 302
    assert not sees(client, auth, secret)

    assert events(db, "access_granted") == [("owen", {
        "reference": secret, "username": "sam", "reason": "Handles the refund"})]
    assert events(db, "access_revoked") == [("isla", {"reference": secret, "username": "sam"})]
    trail = client.get(f"/complaints/{secret}", headers=auth["quinn"]).get_data(as_text=True)
    assert "Granted sam access to the case" in trail
    assert "Revoked the access of sam to the case" in trail


def test_the_api_follows_the_grant(client, auth, secret):
    assert client.get(f"{PREFIX}/complaints/{secret}", headers=auth["sam"]).status_code == 404
    grant(client, auth, secret, user="quinn")
    assert client.get(f"{PREFIX}/complaints/{secret}", headers=auth["sam"]).status_code == 200


@pytest.mark.parametrize("user", ["sam", "sue", "aud"])
def test_only_the_owner_the_iso_and_the_qm_may_grant(client, auth, secret, db, user):
    assert grant(client, auth, secret, user=user, username=user).status_code in (403, 404)
    assert grant(client, auth, secret, user="owen").status_code == 302
    assert revoke(client, auth, secret, user="sue").status_code in (403, 404)
    # one who sees the case but may not grant (the grantee, the auditor) gets 403
    assert grant(client, auth, secret, user="sam", username="sue").status_code == 403
    assert grant(client, auth, secret, user="aud", username="aud").status_code == 403
    assert revoke(client, auth, secret, user="sam").status_code == 403
    assert [actor for actor, _ in events(db, "access_granted")] == ["owen"]
    assert events(db, "access_revoked") == []


def test_granting_to_an_unknown_user_or_without_a_reason_is_refused(client, auth, secret, db):
    response = grant(client, auth, secret, username="nobody")
    assert response.status_code == 302
    html = client.get(f"/complaints/{secret}", headers=auth["owen"]).get_data(as_text=True)
    assert "Access was not changed: There is no user nobody." in html
    grant(client, auth, secret, reason="  ")
    html = client.get(f"/complaints/{secret}", headers=auth["owen"]).get_data(as_text=True)
    assert "Give the reason this person needs to know." in html
    assert events(db, "access_granted") == []
    assert not sees(client, auth, secret)


def test_one_active_grant_per_user_and_case(client, auth, secret, db):
    grant(client, auth, secret)
    grant(client, auth, secret, user="isla")
    html = client.get(f"/complaints/{secret}", headers=auth["owen"]).get_data(as_text=True)
    assert "sam already has access" in html
    revoke(client, auth, secret)
    html = client.get(f"/complaints/{secret}", headers=auth["owen"]).get_data(as_text=True)
    assert "No one else has been granted access." in html
    assert revoke(client, auth, secret).status_code == 302  # nothing left: a message
    grant(client, auth, secret, reason="Again")
    with unit_of_work(db, write=False) as work:
        complaint = work.session.scalars(
            select(Complaint).where(Complaint.reference == secret)).one()
        assert [(g.username, g.reason) for g in active_grants(work.session, complaint.id)] \
            == [("sam", "Again")]


def test_the_engine_refuses_grants_by_others(db, secret):
    from engine.audit import Actor
    with unit_of_work(db) as work:
        with pytest.raises(Forbidden):
            grant_access(work.session, secret, "sam", "x",
                         Actor("aud", frozenset({"auditor"})))
        with pytest.raises(InvalidData):
            grant_access(work.session, secret, "ghost", "x", EVERYONE)


def test_the_forms_need_the_csrf_token(client, secret):
    sign_in(client, "owen")
    html = client.get(f"/complaints/{secret}").get_data(as_text=True)
    assert f'action="/complaints/{secret}/access"' in html
    assert client.post(f"/complaints/{secret}/access",
                       data={"username": "sam", "reason": "r"}).status_code == 400
