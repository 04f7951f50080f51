"""The mail outbox: every message is written with the step that causes it, then sent.

Queueing (``queue``) is an INSERT on the caller's connection, so a message exists
exactly when the step that caused it committed: a step that rolls back leaves no mail.

Delivery (``deliver_due``, run by the worker) takes one due message at a time:

1. *claim* it in a short transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` on
   PostgreSQL (SQLite's writers queue on ``BEGIN IMMEDIATE``), count the attempt and
   move ``next_attempt_at`` on by the backoff of that attempt. The commit is a lease:
   no other worker takes the message until then, and if this worker dies the message
   is tried again when the lease ends. No row lock is held while talking to the SMTP
   server;
2. *send* it with smtplib, with the ``Message-ID`` stored when it was queued;
3. *record* the outcome in a new transaction: ``sent``; or, on a failure, the error
   and (after ``MAX_ATTEMPTS`` attempts, or at once when the server refuses for good
   with a 5xx reply) ``failed``, which admins see and can resend (``resend``: queued
   again, same Message-ID).

So no message is lost, and one is sent twice only if the worker dies between the SMTP
server's acceptance (step 2) and the commit of step 3; the copy then carries the same
Message-ID, so mail clients fold the two. tests/test_outbox.py makes step 3 raise
after a real SMTP server (aiosmtpd) accepted the message and checks both copies.

When ``COMPLAINTS_SMTP_URL`` is unset nothing is sent: the mail stays queued and is
shown to admins on /admin/outbox.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine import clock, settings, wakeup
from engine.audit import SYSTEM, Actor, AuditBatch
from engine.db import UnitOfWork, unit_of_work
from engine.errors import Conflict, Forbidden, InvalidData, NotFound
from engine.models import Complaint, OutboxMessage
from engine.permissions import may_see_personal_data

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
STATES = (QUEUED, SENT, FAILED)

#: Attempts before a message is marked failed (1+2+4+...+60 minutes: about 3 hours).
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
#: Seconds smtplib waits for the server; well under FIRST_RETRY, the shortest lease.
SMTP_TIMEOUT = 30.0


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th attempt a message is tried again."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)


# -- queueing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Queued:
    id: int
    message_id: str


def new_message_id(mail_from: str | None = None) -> str:
    """A globally unique ``<...@domain>`` in the sender's domain."""
    sender = mail_from or settings.load().mail_from
    domain = sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else "localhost"
    return make_msgid(domain=domain or "localhost")


def _insert_statement(dialect_insert):
    table = OutboxMessage.__table__
    return (dialect_insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
            .returning(table.c.id, table.c.message_id))


_INSERT = {"postgresql": _insert_statement(postgresql.insert),
           "sqlite": _insert_statement(sqlite.insert)}


def queue(conn: Connection, *, kind: str, to_address: str, subject: str, body: str,
          instance_id: int | None = None,
          recipient: str | None = None, dedupe_key: str | None = None) -> Queued | None:
    """Queue one message in the caller's transaction; None if ``dedupe_key`` was queued."""
    to_address = (to_address or "").strip()
    if not to_address or "@" not in to_address or any(c in to_address for c in "\r\n,;<>"):
        raise InvalidData(f"not one e-mail address: {to_address!r}")
    now = clock.now()
    row = conn.execute(_INSERT[conn.dialect.name], {
        "message_id": new_message_id(),
        "dedupe_key": dedupe_key,
        "kind": kind,
        "to_address": to_address,
        "recipient": recipient,
        "subject": " ".join(subject.split()),
        "body": body,
        "instance_id": instance_id,
        "state": QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }).first()
    if row is None:
        return None
    wakeup.announce(conn, now)  # the worker sends it once this transaction commits
    return Queued(row.id, row.message_id)


# -- the SMTP server -------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpServer:
    """``smtp://[user:password@]host[:port]`` (plain, port 25), ``smtp+starttls://``
    (STARTTLS, port 587) or ``smtps://`` (TLS, port 465)."""

    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url.strip())
        ports = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
        if parts.scheme not in ports:
            raise ValueError(f"COMPLAINTS_SMTP_URL={url!r}: use smtp://host:port, "
                             "smtp+starttls://host:port or smtps://host:port")
        if not parts.hostname:
            raise ValueError(f"COMPLAINTS_SMTP_URL={url!r} names no host")
        try:
            port = parts.port or ports[parts.scheme]
        except ValueError:
            raise ValueError(f"COMPLAINTS_SMTP_URL={url!r}: the port is not a number") from None
        return cls(parts.hostname, port, tls=parts.scheme == "smtps",
                   starttls=parts.scheme == "smtp+starttls",
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)

    def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the server; returns once the server accepted it."""
        if self.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=SMTP_TIMEOUT,
                context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        try:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


def email_message(row: Any, mail_from: str) -> EmailMessage:
    """The message as sent, the same on every attempt (headers from the stored row)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = row.message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(row.body)
    return message


# -- delivery ----------------------------------------------------------------------------------

_COLUMNS = (OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.kind,
            OutboxMessage.to_address, OutboxMessage.subject, OutboxMessage.body,
            OutboxMessage.instance_id, OutboxMessage.attempts, OutboxMessage.created_at)


@dataclass(frozen=True)
class _Claimed:
    id: int
    message_id: str
    kind: str
    to_address: str
    subject: str
    body: str
    instance_id: int | None
    attempts: int
    created_at: datetime


def _claim(engine: Engine, now: datetime) -> _Claimed | None:
    """Take the most overdue queued message and lease it until its next attempt."""
    with unit_of_work(engine) as uow:
        conn = uow.connection
        query = (select(*_COLUMNS)
                 .where(OutboxMessage.state == QUEUED, OutboxMessage.next_attempt_at <= now)
                 .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                 .limit(1))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:
            return None
        attempts = row.attempts + 1
        conn.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(
            attempts=attempts, last_attempt_at=now, next_attempt_at=now + backoff(attempts)))
        return _Claimed(**{**row._asdict(), "attempts": attempts})


def _record_sent(engine: Engine, row: _Claimed, now: datetime) -> None:
    with unit_of_work(engine) as uow:
        uow.connection.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(
            state=SENT, sent_at=now, next_attempt_at=None, last_error=None))
        audit = AuditBatch(SYSTEM, row.instance_id)
        audit.add("mail_sent", outbox_id=row.id, kind=row.kind, message_id=row.message_id,
                  attempts=row.attempts)
        audit.write(uow.connection)


def _permanent(error: Exception) -> bool:
    """A 5xx reply: the server refuses for good, trying again cannot help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                   for code, text in error.recipients.values()]
        return "recipient refused: " + "; ".join(replies)
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return f"{error.smtp_code} {text}"
    return f"{type(error).__name__}: {error}"


def _record_failure(engine: Engine, row: _Claimed, error: Exception, now: datetime) -> str:
    give_up = row.attempts >= MAX_ATTEMPTS or _permanent(error)
    message = _describe(error)[:2000]
    with unit_of_work(engine) as uow:
        values: dict[str, Any] = {"last_error": message}
        if give_up:
            values.update(state=FAILED, next_attempt_at=None)
        uow.connection.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values))
        if give_up:
            audit = AuditBatch(SYSTEM, row.instance_id)
            audit.add("mail_failed", outbox_id=row.id, kind=row.kind,
                      message_id=row.message_id, attempts=row.attempts, error=message)
            audit.write(uow.connection)
    return FAILED if give_up else QUEUED


def deliver_due(engine: Engine, now: datetime | None = None, *,
                smtp_url: str | None = None, limit: int = 1000) -> int:
    """Send every queued message whose next attempt is due; return how many were sent.

    ``smtp_url`` defaults to ``COMPLAINTS_SMTP_URL``; without one nothing is sent.
    """
    smtp_url = smtp_url or settings.load().smtp_url
    if not smtp_url:
        return 0
    server = SmtpServer.from_url(smtp_url)
    mail_from = settings.load().mail_from
    current: Callable[[], datetime] = (lambda: now) if now is not None else clock.now
    sent = 0
    for _ in range(limit):
        row = _claim(engine, current())
        if row is None:
            break
        try:
            server.send(email_message(row, mail_from))
        except (smtplib.SMTPException, OSError) as error:
            _record_failure(engine, row, error, current())
            continue
        # A crash from here to the commit of _record_sent sends this message again when
        # its lease ends, with the same Message-ID.
        _record_sent(engine, row, current())
        sent += 1
    return sent


def next_attempt_due(conn: Connection) -> datetime | None:
    """When the earliest queued message should next be tried, or None.

    None also when no SMTP server is configured: then nothing will be sent, and the
    worker need not wake up for mail.
    """
    if not settings.load().smtp_url:
        return None
    return conn.scalar(select(func.min(OutboxMessage.next_attempt_at))
                       .where(OutboxMessage.state == QUEUED))


# -- admins ------------------------------------------------------------------------------------

def may_manage_outbox(actor: Actor) -> bool:
    return actor.has_role("admin")


def resend(uow: UnitOfWork, outbox_id: int, actor: Actor) -> OutboxMessage:
    """Queue a failed message again, due now, with its Message-ID (audited)."""
    if not may_manage_outbox(actor):
        raise Forbidden("only admins may resend mail")
    session = uow.session
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.id == outbox_id)
                              .with_for_update()).first()
    if message is None:
        raise NotFound(f"there is no message {outbox_id} in the outbox")
    if message.state != FAILED:
        raise Conflict(f"message {outbox_id} is {message.state}: only failed mail is resent")
    now = clock.now()
    message.state = QUEUED
    message.attempts = 0
    message.next_attempt_at = now
    session.flush()
    audit = AuditBatch(actor, message.instance_id)
    audit.add("mail_resend", outbox_id=message.id, kind=message.kind,
              message_id=message.message_id, last_error=message.last_error)
    audit.write(uow.connection)
    return message


def counts(conn: Connection) -> dict[str, int]:
    """How many messages are in each state."""
    rows = conn.execute(select(OutboxMessage.state, func.count())
                        .group_by(OutboxMessage.state)).all()
    found = {state: count for state, count in rows}
    return {state: found.get(state, 0) for state in STATES}


@dataclass(frozen=True)
class Listed:
    """A message as admins see it. ``withheld``: it is about (or names) a need-to-know
    complaint whose personal data the reader may not see; its recipient, subject, text
    and reference are then not shown (need-to-know cases stay invisible)."""

    message: OutboxMessage
    reference: str | None
    withheld: bool


PAGE_SIZE = 50
_REFERENCE = re.compile(r"\bCMP-\d{4}-\d{6,}\b")


def list_messages(session: Session, actor: Actor, state: str | None = None,
                  page: int = 1) -> tuple[list[Listed], int]:
    """One page of the outbox, newest first, and the number of messages in all."""
    if not may_manage_outbox(actor):
        raise Forbidden("the outbox is shown to admins")
    where = [OutboxMessage.state == state] if state else []
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(*where))
    rows = session.execute(
        select(OutboxMessage, Complaint)
        .outerjoin(Complaint, Complaint.instance_id == OutboxMessage.instance_id)
        .where(*where)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)).all()
    # Mail about no one case (the digest) may name several: withheld if it names one
    # the reader may not see.
    named = {message.id: set(_REFERENCE.findall(f"{message.subject}\n{message.body}"))
             for message, complaint in rows if complaint is None}
    mentioned = session.scalars(select(Complaint).where(
        Complaint.reference.in_(sorted(set().union(*named.values()))),
        Complaint.need_to_know.is_(True))).all() if named else []
    hidden = {c.reference for c in mentioned if not may_see_personal_data(actor, c)}
    listed = []
    for message, complaint in rows:
        if complaint is not None:
            withheld = not may_see_personal_data(actor, complaint)
        else:
            withheld = bool(named[message.id] & hidden)
        reference = complaint.reference if complaint is not None and not withheld else None
        listed.append(Listed(message, reference, withheld))
    return listed, total or 0
