"""Set-up shared by the web and engine tests: a seeded database and a test app."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine

from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.deploy import deploy_directory
from engine.users import create_user

#: The password of every user the tests create.
PASSWORD = "correct horse battery"


def seeded_database(
    db_url: str,
    users: Mapping[str, Iterable[str]],
    directories: Iterable[Path] = (),
    actor: Actor | None = None,
    note: str | None = None,
    password: str = PASSWORD,
) -> Engine:
    """The database at ``db_url`` with ``users`` (name -> roles) and each directory of
    ``directories`` deployed by ``actor`` (with the change ``note``), all in one commit."""
    engine = get_engine(db_url)
    with unit_of_work(engine) as uow:
        for username, roles in users.items():
            create_user(uow.session, username, password, list(roles))
        for directory in directories:
            result = deploy_directory(uow.session, directory, actor, note)
            assert result.ok, [str(p) for p in result.problems]
    return engine


def deploy(engine: Engine, directory: Path, actor: Actor | None = None,
           note: str | None = None):
    """Deploy ``directory`` in a commit of its own; the deploy result (it must be ok)."""
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, directory, actor, note)
    assert result.ok, [str(p) for p in result.problems]
    return result


def test_app() -> Flask:
    """The web app as the tests use it (the database comes from the settings)."""
    from web import create_app

    return create_app({"SECRET_KEY": "test-secret", "TESTING": True})


test_app.__test__ = False  # a helper: pytest must not collect it where it is imported


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``, as a browser would read it."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, username: str, password: str = PASSWORD):
    """Sign ``client`` in through the login form; the client, signed in."""
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
