"""Pages: task_pages (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("task_pages", __name__)
