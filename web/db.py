"""The database as the web layer sees it: the engine's unit of work on the app's database."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import current_app

from engine.db import UnitOfWork, get_engine, unit_of_work


def database_url() -> str | None:
    """``DATABASE_URL`` from the app config; None means the configured database."""
    return current_app.config.get("DATABASE_URL")


def uow(*, write: bool = True) -> AbstractContextManager[UnitOfWork]:
    return unit_of_work(get_engine(database_url()), write=write)
