"""The `complaints` command as operators use it (shared/interface.md)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import select

from engine import worker
from engine.audit import SYSTEM
from engine.cli import main
from engine.closures import add_closure_day, load_calendar, remove_closure_day
from engine.db import get_engine, unit_of_work
from engine.models import ApiToken, ProcessDefinition, User
from engine.settings import PROJECT_ROOT
from engine.users import authenticate, user_for_token

from .conftest import FIXTURES

MIWG = FIXTURES / "miwg"


def run(capsys, *argv, stdin: str = ""):
    sys_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv))
    finally:
        sys.stdin = sys_stdin
    out, err = capsys.readouterr()
    return code, out, err


def test_db_upgrade_creates_schema_and_is_repeatable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "db", "upgrade")[0] == 0
    with unit_of_work(get_engine()) as uow:
        assert uow.session.scalars(select(User)).all() == []


def test_deploy_prints_version_then_unchanged(sqlite_url, capsys):
    code, out, _ = run(capsys, "definitions", "deploy", str(FIXTURES / "engine"))
    assert code == 0
    assert re.fullmatch(r"complaint_like v1 [0-9a-f]{12}\n", out)
    code, out, _ = run(capsys, "definitions", "deploy", str(FIXTURES / "engine"))
    assert (code, out) == (0, "complaint_like unchanged\n")


def test_deploy_of_miwg_corpus_prints_one_error_per_file_and_deploys_nothing(sqlite_url, capsys):
    code, out, err = run(capsys, "definitions", "deploy", str(MIWG))
    assert code == 1
    lines = out.splitlines()
    files = sorted(p.name for p in MIWG.glob("*.bpmn"))
    assert sorted({line.split(":")[0] for line in lines}) == files
    assert all(re.match(r"^[A-B]\.\d\.\d\.bpmn:\d+: \S", line) for line in lines)
    assert "A.1.0.bpmn:1: no executable process" in out
    assert "nothing was deployed" in err
    with unit_of_work(get_engine(), write=False) as uow:
        assert uow.session.scalars(select(ProcessDefinition)).all() == []


def test_deploy_with_one_bad_file_deploys_nothing(sqlite_url, capsys, tmp_path):
    for name in ("complaint_like.bpmn",):
        (tmp_path / name).write_text((FIXTURES / "engine" / name).read_text())
    (tmp_path / "forms").mkdir()
    for form in (FIXTURES / "engine" / "forms").iterdir():
        (tmp_path / "forms" / form.name).write_text(form.read_text())
    (tmp_path / "broken.bpmn").write_text("<definitions>")
    code, out, _ = run(capsys, "definitions", "deploy", str(tmp_path))
    assert code == 1
    assert out.startswith("broken.bpmn:1: XML is not well-formed")
    with unit_of_work(get_engine(), write=False) as uow:
        assert uow.session.scalars(select(ProcessDefinition)).all() == []


def test_users_create_reads_password_from_stdin_and_refuses_duplicates(sqlite_url, capsys):
    code, out, _ = run(capsys, "users", "create", "quinn", "--role", "quality_manager",
                       "--role", "staff", "--email", "q@example.invalid",
                       stdin="a long password\n")
    assert code == 0
    with unit_of_work(get_engine()) as uow:
        user = authenticate(uow.session, "quinn", "a long password")
        assert user is not None and user.role_names == {"quality_manager", "staff"}
        assert user.password_hash.startswith("scrypt$")
    assert run(capsys, "users", "create", "quinn", "--role", "staff",
               stdin="a long password\n")[0] == 1
    code, _, err = run(capsys, "users", "create", "rita", "--role", "wizard",
                       stdin="a long password\n")
    assert code == 1 and "unknown role" in err


def test_tokens_create_prints_a_token_stored_only_as_hash(sqlite_url, capsys):
    run(capsys, "users", "create", "sam", "--role", "staff", stdin="a long password\n")
    code, out, _ = run(capsys, "tokens", "create", "sam")
    token = out.strip()
    assert code == 0 and len(token) > 30
    with unit_of_work(get_engine()) as uow:
        assert user_for_token(uow.session, token).username == "sam"
        assert user_for_token(uow.session, token + "x") is None
        stored = uow.session.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored and len(stored) == 1


def test_worker_once_exits_after_handling_what_is_due(sqlite_url, capsys):
    code, out, _ = run(capsys, "worker", "--once")
    assert (code, out) == (0, "processed 0 due instance(s)\n")


def test_only_one_worker_runs_on_sqlite(tmp_path):
    first = worker.SingleWorkerLock(tmp_path / "worker.lock")
    first.acquire()
    second = worker.SingleWorkerLock(tmp_path / "worker.lock")
    with pytest.raises(RuntimeError, match="only one worker may run"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_closure_days_change_the_calendar_of_later_steps(db):
    with unit_of_work(db) as uow:
        add_closure_day(uow.session, date(2026, 12, 29), "Company closure", SYSTEM)
    with unit_of_work(db, write=False) as uow:
        calendar = load_calendar(uow.connection)
    assert not calendar.is_business_day(date(2026, 12, 29))
    with unit_of_work(db) as uow:
        assert remove_closure_day(uow.session, date(2026, 12, 29), SYSTEM)
    with unit_of_work(db, write=False) as uow:
        assert load_calendar(uow.connection).is_business_day(date(2026, 12, 29))


def test_console_script_is_installed():
    exe = PROJECT_ROOT / ".venv" / "bin" / "complaints"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("db", "definitions", "users", "tokens", "serve", "worker"):
        assert command in result.stdout


def test_demo_users_give_unowned_processes_the_demo_process_owner(sqlite_url, capsys):
    from engine.models import ProcessGovernance

    assert run(capsys, "definitions", "deploy", str(FIXTURES / "engine"))[0] == 0
    code, out, _ = run(capsys, "demo-users")
    assert code == 0 and "paul.process" in out
    with unit_of_work(get_engine(), write=False) as uow:
        owners = {row.process_id: row.owner
                  for row in uow.session.scalars(select(ProcessGovernance))}
    assert owners == {"complaint_like": "paul.process"}
    assert run(capsys, "demo-users")[0] == 0  # again: nothing to change, no error
