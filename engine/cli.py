"""The ``complaints`` command (see shared/interface.md)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from engine import migrate
from engine.audit import Actor
from engine.db import get_engine, unit_of_work
from engine.errors import EngineError
from engine.settings import PROJECT_ROOT

CLI_ACTOR = Actor("cli", frozenset({"admin", "process_owner"}))
MAILGATE_ACTOR = Actor("mailgate", frozenset({"staff"}))
#: sysexits.h EX_TEMPFAIL: the MTA keeps the message and retries (Postfix pipe(8),
#: Exim, sendmail). Any other non-zero status (we use 1) makes it bounce the message.
EX_TEMPFAIL = 75


def _db_upgrade(args: argparse.Namespace) -> int:
    from engine.governance import ensure_all

    migrate.upgrade(get_engine())
    with unit_of_work() as uow:  # processes deployed before governance get an owner row
        ensure_all(uow.session, CLI_ACTOR)
    print("database schema is up to date")
    return 0


def _definitions_dir(args: argparse.Namespace) -> Path | None:
    """DIR of a `definitions` command (default processes/), or None after saying why."""
    directory = Path(args.dir) if args.dir else PROJECT_ROOT / "processes"
    if not directory.is_dir():
        print(f"{directory}: no such directory", file=sys.stderr)
        return None
    return directory


def _definitions_deploy(args: argparse.Namespace) -> int:
    from engine.deploy import deploy_directory

    directory = _definitions_dir(args)
    if directory is None:
        return 1
    with unit_of_work() as uow:
        result = deploy_directory(uow.session, directory, CLI_ACTOR, args.note,
                                  keep_newer=args.keep_newer)
    if not result.ok:
        for problem in result.problems:
            print(problem)
        print(f"{len(result.problems)} problem(s): nothing was deployed", file=sys.stderr)
        return 1
    if not result.deployed:
        print(f"{directory}: no BPMN files to deploy")
    for deployed in result.deployed:
        print(deployed)
    return 0


def _definitions_test(args: argparse.Namespace) -> int:
    from engine.scenarios import run_directory

    directory = _definitions_dir(args)
    if directory is None:
        return 1

    def show(result) -> None:
        print("\n".join(result.lines()), flush=True)

    report = run_directory(directory, on_result=show)
    if report.problems:
        for problem in report.problems:
            print(problem)
        print(report.summary(), file=sys.stderr)
    else:
        print(report.summary())
    return report.exit_code


def _users_create(args: argparse.Namespace) -> int:
    from engine.users import create_user

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        with unit_of_work() as uow:
            create_user(uow.session, args.username, password, args.role, args.email, CLI_ACTOR)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created user {args.username} ({', '.join(sorted(args.role))})")
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    from engine.users import create_token

    try:
        with unit_of_work() as uow:
            token = create_token(uow.session, args.username, CLI_ACTOR)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def _serve(args: argparse.Namespace) -> int:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    argv = [str(gunicorn), "--bind", args.bind, "--workers", str(args.workers),
            "--access-logfile", "-", "--chdir", str(PROJECT_ROOT), "web.wsgi:app"]
    os.execv(argv[0], argv)
    return 0  # not reached


def _worker(args: argparse.Namespace) -> int:
    from engine import worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    return worker.command(get_engine(), once=args.once)


def _mailgate(args: argparse.Namespace) -> int:
    """One message on standard input -> one complaint; the reference on standard output.

    Exit 0: recorded. Exit 1: the message is refused (InvalidData: no sender, no text,
    too large, ...), nothing is recorded and the MTA bounces it to the sender with the
    reason. Exit 75 (EX_TEMPFAIL): anything else (database or disk unavailable, the
    process not deployed, a bug), nothing is recorded and the MTA retries later.
    """
    from engine.errors import InvalidData
    from engine.mailgate import record_email

    try:
        raw = sys.stdin.buffer.read()
        with unit_of_work() as uow:
            reference = record_email(uow, raw, MAILGATE_ACTOR)
    except InvalidData as exc:
        details = "; ".join(f"{name}: {', '.join(messages)}"
                            for name, messages in sorted(exc.fields.items()))
        print(f"refused: {exc}" + (f" ({details})" if details else ""), file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - every other failure is worth a retry
        print(f"temporary failure, try again later: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EX_TEMPFAIL
    print(reference)
    return 0


def _demo_users(args: argparse.Namespace) -> int:
    from engine.demo import DEMO_PROCESS_OWNER, ensure_demo_owners, ensure_demo_users

    with unit_of_work() as uow:
        lines = ensure_demo_users(uow.session, CLI_ACTOR)
        if ensure_demo_owners(uow.session, CLI_ACTOR):
            lines.append(f"(processes without an owner now belong to {DEMO_PROCESS_OWNER})")
    print("Demo users (sign in at http://127.0.0.1:8000/login):")
    for line in lines:
        print(f"  {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="complaints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=_db_upgrade)

    definitions = sub.add_parser("definitions", help="BPMN process definitions")
    dsub = definitions.add_subparsers(dest="definitions", required=True)
    deploy = dsub.add_parser("deploy", help="validate and deploy BPMN/DMN files")
    deploy.add_argument("dir", nargs="?", help="directory (default: processes/)")
    deploy.add_argument("--note", help="change note: what changed in the policy and why")
    deploy.add_argument("--keep-newer", action="store_true",
                        help="leave a process alone when its files equal a version deployed "
                             "before (keeps newer versions deployed from the editor)")
    deploy.set_defaults(func=_definitions_deploy)
    scenario_test = dsub.add_parser(
        "test", help="run the scenario files DIR/tests/*.json against the diagrams in DIR")
    scenario_test.add_argument("dir", nargs="?", help="directory (default: processes/)")
    scenario_test.set_defaults(func=_definitions_test)

    users = sub.add_parser("users", help="user accounts")
    usub = users.add_subparsers(dest="users", required=True)
    create = usub.add_parser("create", help="create a user; password on standard input")
    create.add_argument("username")
    create.add_argument("--role", action="append", required=True)
    create.add_argument("--email")
    create.set_defaults(func=_users_create)

    tokens = sub.add_parser("tokens", help="API bearer tokens")
    tsub = tokens.add_subparsers(dest="tokens", required=True)
    tcreate = tsub.add_parser("create", help="print a new token for a user")
    tcreate.add_argument("username")
    tcreate.set_defaults(func=_tokens_create)

    serve = sub.add_parser("serve", help="run the web application under gunicorn")
    serve.add_argument("--bind", default="127.0.0.1:8000")
    serve.add_argument("--workers", type=int, default=2)
    serve.set_defaults(func=_serve)

    work = sub.add_parser("worker", help="fire due timers and send queued mail")
    work.add_argument("--once", action="store_true", help="handle what is due now and exit")
    work.set_defaults(func=_worker)

    mailgate = sub.add_parser(
        "mailgate", help="record the e-mail on standard input as a complaint; print its "
        "reference (exit 1: refused, bounce; exit 75: temporary failure, retry)")
    mailgate.set_defaults(func=_mailgate)

    demo = sub.add_parser("demo-users", help="create the demo users (unless they exist)")
    demo.set_defaults(func=_demo_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
