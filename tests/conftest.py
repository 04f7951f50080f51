"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), the clock."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from engine import clock, migrate, runtime
from engine.db import dispose_all, get_engine
from engine.models import Base

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("COMPLAINTS_TEST_DATABASE_URL")
PG_SKIP_REASON = "COMPLAINTS_TEST_DATABASE_URL is not set: PostgreSQL tests skipped"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url():
    """A private schema in the test database, migrated once for the whole session."""
    if not PG_URL:
        if os.environ.get("COMPLAINTS_REQUIRE_POSTGRES"):
            pytest.fail("COMPLAINTS_REQUIRE_POSTGRES is set but not COMPLAINTS_TEST_DATABASE_URL")
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    dispose_all()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _fresh_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "complaints.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def _fresh_pg(url: str) -> str:
    engine = get_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, sqlite_template, tmp_path, monkeypatch) -> str:
    """A migrated, empty database: every test using it runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        url = _fresh_sqlite(sqlite_template, tmp_path)
    else:
        url = _fresh_pg(request.getfixturevalue("pg_schema_url"))
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", url)
    runtime.clear_caches()
    yield url
    runtime.clear_caches()


@pytest.fixture
def pg_url(request, monkeypatch) -> str:
    """A migrated, empty PostgreSQL database (for what only PostgreSQL can do; mark the
    test ``@pytest.mark.postgres``)."""
    url = _fresh_pg(request.getfixturevalue("pg_schema_url"))
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", url)
    runtime.clear_caches()
    yield url
    runtime.clear_caches()


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path, monkeypatch) -> str:
    """A migrated, empty SQLite database (for tests that need only one database)."""
    url = _fresh_sqlite(sqlite_template, tmp_path)
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", url)
    runtime.clear_caches()
    yield url
    runtime.clear_caches()


@pytest.fixture
def db(db_url):
    return get_engine(db_url)


@pytest.fixture
def manual_clock():
    """Engine time frozen at Monday 21 December 2026, 14:30 London; move it with advance()."""
    mc = clock.ManualClock(datetime(2026, 12, 21, 14, 30, tzinfo=LONDON))
    clock.set_default(mc)
    yield mc
    clock.set_default(clock.SYSTEM_CLOCK)
