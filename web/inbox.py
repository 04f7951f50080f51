"""Pages: inbox (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("inbox", __name__)
