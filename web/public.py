"""Pages: public (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("public", __name__)
