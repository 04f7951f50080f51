"""The case page's "Change the Complaint Owner" form (policy 5.2, 8.1; engine/owner_change.py).

Shown to the Quality Manager, the Operations Director and admins on a case they see
that is not closed; posting it is one CSRF-protected, audited transaction. The outcome
is flashed on the case page.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from engine.audit import Actor
from engine.db import UnitOfWork
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import Complaint
from engine.owner_change import change_owner, complaint_owners
from engine.permissions import may_change_owner
from web.auth import current_actor
from web.db import uow

bp = Blueprint("owner_pages", __name__)


def owner_choices(work: UnitOfWork, actor: Actor, complaint: Complaint) -> list[str] | None:
    """The complaint owners the form offers (the current owner left out), or None when
    the form is not shown: the user may not change owners, or the case is closed."""
    if not may_change_owner(actor) or complaint.status == "closed":
        return None
    return [name for name in complaint_owners(work.connection) if name != complaint.owner]


@bp.post("/complaints/<reference>/owner")
@login_required
def change(reference: str) -> BaseResponse:
    try:
        with uow() as work:
            done = change_owner(work, reference, request.form.get("owner", ""),
                                request.form.get("reason", ""), current_actor())
    except NotFound as error:
        abort(404, str(error))
    except Forbidden as error:
        abort(403, str(error))
    except (InvalidData, Conflict) as error:
        details = "; ".join(m for messages in getattr(error, "fields", {}).values()
                            for m in messages)
        flash(f"The Complaint Owner was not changed: {error}"
              + (f" ({details})" if details and details not in str(error) else ""))
    else:
        moved = len(done.moved_tasks)
        flash(f"{done.new_owner} is now the Complaint Owner (was {done.old_owner or 'nobody'})"
              + (f"; {moved} open task{'s' if moved != 1 else ''} moved to them." if moved
                 else "."))
    return redirect(url_for("register_pages.case", reference=reference))
