"""Pages: register_pages (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("register_pages", __name__)
