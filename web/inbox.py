"""The inbox (issue 4): the tasks I may work on, with their state; claim and release.

Plain SQL over the projection tables (web.queries): no workflow is deserialized; the
filters, the count and the paging (PAGE_SIZE tasks a page) are done by the database.
Tasks are shown by role or assignment (the task is the user's work); of a complaint
only its reference is shown here, so need-to-know cases give nothing more away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from engine import clock, deadlines
from engine.errors import Conflict, Forbidden, NotFound
from engine.instances import claim_task, release_task
from engine.models import HumanTask
from engine.permissions import may_work_on
from web import queries
from web.auth import current_actor
from web.db import uow

bp = Blueprint("inbox", __name__)

#: A task is "due soon" once this share of the time from its creation to its due time
#: has passed.
DUE_SOON_SHARE = deadlines.DUE_SOON_SHARE
STATES = queries.INBOX_STATES
STATE_LABELS = {"overdue": "Overdue", "due_soon": "Due soon", "unclaimed": "Not claimed",
                "mine": "Mine (claimed by or assigned to me)"}
SORT_LABELS = {"due": "Due time", "created": "Created", "title": "Title"}
MAX_QUERY = 100
#: Tasks shown on one page of the inbox.
PAGE_SIZE = 50


@dataclass
class InboxItem:
    task: HumanTask
    case: str  # the complaint reference, or the process id of another process
    is_complaint: bool
    overdue: bool
    due_soon: bool
    claimed_by_me: bool
    claimed_by_other: str | None

    @property
    def labels(self) -> list[tuple[str, str]]:
        """(css class, text) of each state that applies."""
        labels = []
        if self.overdue:
            labels.append(("overdue", "Overdue"))
        elif self.due_soon:
            labels.append(("due-soon", "Due soon"))
        if self.claimed_by_me:
            labels.append(("claimed-mine", "Claimed by you"))
        elif self.claimed_by_other:
            labels.append(("claimed-other", f"Claimed by {self.claimed_by_other}"))
        return labels


def time_state(task: HumanTask, now: datetime) -> tuple[bool, bool]:
    """(overdue, due soon) of a task at ``now``."""
    if task.due_at is None:
        return False, False
    state = deadlines.deadline_state(task.created_at, task.due_at, None, now)
    return state == deadlines.OVERDUE, state == deadlines.DUE_SOON


def _item(task: HumanTask, reference: str | None, process_id: str, now: datetime,
          username: str) -> InboxItem:
    overdue, due_soon = time_state(task, now)
    return InboxItem(
        task=task,
        case=reference or process_id,
        is_complaint=reference is not None,
        overdue=overdue,
        due_soon=due_soon,
        claimed_by_me=task.claimed_by == username,
        claimed_by_other=task.claimed_by if task.claimed_by not in (None, username) else None,
    )


def _page_number(text: str) -> int:
    """The ``page`` parameter: a whole number from 1 (anything else is page 1)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 10**6 else 1


@bp.get("/inbox")
@login_required
def inbox() -> str:
    sort = request.args.get("sort", "due")
    if sort not in queries.INBOX_SORTS:
        sort = "due"
    state = request.args.get("state", "")
    if state not in STATES:
        state = ""
    q = request.args.get("q", "").strip()[:MAX_QUERY]
    page = _page_number(request.args.get("page", "1"))
    username = current_user.username
    now = clock.now()
    with uow(write=False) as work:
        def fetch(page: int):
            return queries.inbox_tasks(
                work.session, username, current_user.role_names, q=q or None, sort=sort,
                state=state or None, now=now, due_soon_share=DUE_SOON_SHARE,
                limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        rows, total = fetch(page)
        pages = queries.page_count(total, PAGE_SIZE)
        if page > pages:  # past the end (tasks were done meanwhile): show the last page
            page = pages
            rows, total = fetch(page)
        items = [_item(task, reference, process_id, now, username)
                 for task, reference, process_id in rows]
    kept = {key: value for key, value in (("q", q), ("state", state), ("sort", sort))
            if value}

    def page_url(number: int) -> str:
        return url_for("inbox.inbox", **kept, **({"page": number} if number > 1 else {}))

    return render_template("inbox.html", items=items, sort=sort, state=state, q=q,
                           states=STATE_LABELS, sorts=SORT_LABELS,
                           filtered=bool(state or q), back=request.full_path.rstrip("?"),
                           total=total, page=page, pages=pages, page_size=PAGE_SIZE,
                           first=(page - 1) * PAGE_SIZE + 1 if items else 0,
                           last=(page - 1) * PAGE_SIZE + len(items), page_url=page_url)


def _back() -> str:
    """Where to go after a claim or release: a page of this site, else the inbox."""
    target = request.form.get("next", "")
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 for c in target)):
        return url_for("inbox.inbox")
    return target


def _change_claim(task_id: str, claim: bool) -> Response:
    actor = current_actor()
    try:
        with uow() as work:
            row = queries.task_by_id(work.session, task_id)
            if row is None or not (may_work_on(actor, row) or row.claimed_by == actor.username):
                abort(404)
            title = row.title
            if claim:
                claim_task(work, task_id, actor)
            else:
                release_task(work, task_id, actor)
    except NotFound:
        abort(404)
    except (Conflict, Forbidden) as error:
        flash(f"{'Claiming' if claim else 'Releasing'} did not work: {error}.")
    else:
        flash(f'You claimed "{title}".' if claim else f'You released "{title}".')
    return redirect(_back())


@bp.post("/inbox/<task_id>/claim")
@login_required
def claim(task_id: str) -> Response:
    return _change_claim(task_id, claim=True)


@bp.post("/inbox/<task_id>/release")
@login_required
def release(task_id: str) -> Response:
    return _change_claim(task_id, claim=False)
