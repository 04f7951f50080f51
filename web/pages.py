"""HTML pages for signed-in staff (the full inbox comes later)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from web import queries
from web.db import uow

bp = Blueprint("pages", __name__)


@bp.get("/")
@login_required
def home() -> str:
    with uow(write=False) as work:
        tasks = queries.ready_tasks_for(work.session, current_user.username,
                                        current_user.role_names)
    return render_template("home.html", tasks=tasks)
