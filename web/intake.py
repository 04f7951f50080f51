"""Pages: intake (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("intake", __name__)
