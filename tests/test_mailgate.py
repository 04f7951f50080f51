"""The mail gate and evidence storage: an e-mail becomes a complaint with its .eml kept.

Database tests run on SQLite and (when configured) PostgreSQL, with the register's
test process (tests/fixtures/register) deployed and the evidence directory in tmp_path.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import cli, documents, mailgate
from engine.audit import Actor
from engine.db import unit_of_work
from engine.errors import InvalidData
from engine.models import AuditEvent, Complaint, Document
from engine.roles import ROLES

from .conftest import FIXTURES
from .support import deploy

GATE = Actor("mailgate", frozenset({"staff"}))
EVERYONE = Actor("root", frozenset(ROLES))
PLAIN = b"""From: Ann Example <ann@example.org>
To: complaints@example.com
Subject: Parcel arrived broken
Date: Mon, 21 Dec 2026 09:15:30 +0000
Message-ID: <1@example.org>
Content-Type: text/plain; charset=utf-8

The parcel was crushed
and the vase inside broken.
"""


@pytest.fixture
def evidence(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "evidence"
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_DIR", str(path))
    return path


@pytest.fixture
def deployed(db, evidence, manual_clock):
    deploy(db, FIXTURES / "register", EVERYONE)
    return db


def receive(db, raw: bytes) -> str:
    with unit_of_work(db) as uow:
        return mailgate.record_email(uow, raw, GATE)


def complaint(db, reference) -> Complaint:
    with unit_of_work(db, write=False) as uow:
        return uow.session.scalars(
            select(Complaint).where(Complaint.reference == reference)).one()


def counts(db) -> tuple[int, int]:
    with unit_of_work(db, write=False) as uow:
        return (uow.session.scalar(select(func.count()).select_from(Complaint)),
                uow.session.scalar(select(func.count()).select_from(Document)))


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_recorded(db, evidence):
    assert counts(db) == (0, 0)
    assert files(evidence) == []


# -- the mail gate ---------------------------------------------------------------------------

def test_a_plain_message_becomes_an_email_complaint_with_the_eml_as_evidence(
        deployed, evidence):
    reference = receive(deployed, PLAIN)

    row = complaint(deployed, reference)
    assert reference == "CMP-2026-000001"
    assert row.channel == "email"
    assert (row.complainant_name, row.complainant_email) == ("Ann Example", "ann@example.org")
    assert row.summary == "Parcel arrived broken"
    assert row.description == "The parcel was crushed\nand the vase inside broken."
    assert row.received_at == datetime(2026, 12, 21, 9, 15, 30, tzinfo=UTC)
    assert row.status == "received"

    with unit_of_work(deployed, write=False) as uow:
        doc = uow.session.scalars(select(Document)).one()
        stored, data = documents.read_document(uow, doc.id)
        events = uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "document_added")).all()
    assert (doc.complaint_id, doc.filename, doc.content_type) == (
        row.id, "message.eml", "message/rfc822")
    assert (doc.size, doc.sha256) == (len(PLAIN), hashlib.sha256(PLAIN).hexdigest())
    assert doc.created_by == "mailgate"
    assert data == PLAIN
    # The bytes are on disk, content-addressed, private; not in the row.
    [path] = files(evidence)
    assert path == evidence / doc.sha256[:2] / doc.sha256[2:4] / doc.sha256
    assert path.read_bytes() == PLAIN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any(isinstance(getattr(doc, c.key), bytes) for c in Document.__table__.columns)
    [event] = events
    assert (event.actor, event.instance_id) == ("mailgate", row.instance_id)
    assert event.details["reference"] == reference
    assert event.details["sha256"] == doc.sha256


def test_a_date_in_the_future_or_unreadable_falls_back_to_now(deployed, manual_clock):
    future = PLAIN.replace(b"Mon, 21 Dec 2026 09:15:30 +0000", b"Tue, 22 Dec 2026 09:00:00 +0000")
    broken = PLAIN.replace(b"Mon, 21 Dec 2026 09:15:30 +0000", b"sometime last week")
    for raw in (future, broken):
        assert complaint(deployed, receive(deployed, raw)).received_at == manual_clock.now()


def test_an_empty_body_is_refused_and_nothing_is_recorded(deployed, evidence):
    raw = PLAIN.split(b"\n\n", 1)[0] + b"\n\n   \n\n"
    with pytest.raises(InvalidData, match="no text"):
        receive(deployed, raw)
    assert_nothing_recorded(deployed, evidence)


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (b"just some words without any header\n", "no headers"),
    (b"Subject: hi\n\nbody\n", "no valid From"),
    (b"From: nobody\nSubject: hi\n\nbody\n", "no valid From"),
])
def test_malformed_messages_are_refused_with_the_reason(deployed, evidence, raw, reason):
    with pytest.raises(InvalidData, match=reason):
        receive(deployed, raw)
    assert_nothing_recorded(deployed, evidence)


def test_a_multipart_message_gives_its_text_part_not_its_html(deployed):
    message = EmailMessage()
    message["From"] = "bob@example.org"
    message["Subject"] = "  Late \t  delivery  "
    message.set_content("Plain words about the delay.")
    message.add_alternative("<html><body><p>HTML <b>words</b></p></body></html>",
                            subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                           filename="receipt.pdf")

    row = complaint(deployed, receive(deployed, message.as_bytes()))
    assert row.description == "Plain words about the delay."
    assert row.summary == "Late delivery"
    assert (row.complainant_name, row.complainant_email) == ("bob@example.org",
                                                             "bob@example.org")


def test_an_html_only_message_is_turned_into_text_and_a_missing_subject_noted(deployed):
    message = EmailMessage()
    message["From"] = "Cat <cat@example.org>"
    message.set_content(
        "<html><head><style>p {color: red}</style></head><body><p>Rude&nbsp;staff &amp; "
        "slow</p><div>at the <i>counter</i></div><script>x()</script></body></html>",
        subtype="html")

    row = complaint(deployed, receive(deployed, message.as_bytes()))
    assert row.description == "Rude\xa0staff & slow\n\nat the counter"
    assert row.summary == "(no subject)"


def test_a_long_subject_and_body_are_cut_to_what_the_register_takes(deployed):
    raw = (b"From: a@example.org\nSubject: " + b"x" * 300 + b"\n\n" + b"y" * 30_000 + b"\n")
    row = complaint(deployed, receive(deployed, raw))
    assert row.summary == "x" * 200
    assert len(row.description) == 20_000
    assert row.description.endswith("message.eml]")


def test_an_oversize_message_is_refused_and_nothing_is_recorded(deployed, evidence,
                                                                monkeypatch):
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_MAX_BYTES", "100")
    with pytest.raises(InvalidData, match="at most 100 bytes"):
        receive(deployed, PLAIN)
    assert_nothing_recorded(deployed, evidence)


def test_evidence_that_cannot_be_stored_records_no_complaint(deployed, evidence,
                                                            monkeypatch):
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(documents, "_write_blob", full_disk)
    with pytest.raises(OSError):
        receive(deployed, PLAIN)
    assert_nothing_recorded(deployed, evidence)


def test_a_rolled_back_transaction_removes_the_file_it_wrote(deployed, evidence):
    with pytest.raises(RuntimeError), unit_of_work(deployed) as uow:
        mailgate.record_email(uow, PLAIN, GATE)
        assert len(files(evidence)) == 1
        raise RuntimeError("later failure in the same transaction")
    assert_nothing_recorded(deployed, evidence)


# -- evidence storage ------------------------------------------------------------------------

def test_documents_are_checked_for_type_and_size(deployed, evidence, monkeypatch):
    reference = receive(deployed, PLAIN)
    with pytest.raises(InvalidData, match="not accepted"), unit_of_work(deployed) as uow:
        documents.store_document(uow, reference, "x.exe", "application/x-msdownload",
                                 b"MZ", GATE)
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_MAX_BYTES", "10")
    with pytest.raises(InvalidData, match="at most 10 bytes"), unit_of_work(deployed) as uow:
        documents.store_document(uow, reference, "a.txt", "text/plain", b"x" * 11, GATE)
    assert counts(deployed) == (1, 1)

    with unit_of_work(deployed) as uow:
        doc = documents.store_document(uow, reference, "../../etc/Note.TXT",
                                       "Text/Plain; charset=utf-8", b"x" * 10, GATE)
    assert (doc.filename, doc.content_type) == ("Note.TXT", "text/plain")
    with unit_of_work(deployed, write=False) as uow:
        assert [d.filename for d in documents.list_documents(uow, reference)] == [
            "message.eml", "Note.TXT"]


def test_the_same_bytes_twice_share_one_file(deployed, evidence):
    first, second = receive(deployed, PLAIN), receive(deployed, PLAIN)
    assert first != second
    assert counts(deployed) == (2, 2)
    assert len(files(evidence)) == 1


def test_reading_a_document_whose_bytes_were_altered_fails(deployed, evidence):
    receive(deployed, PLAIN)
    [path] = files(evidence)
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    with unit_of_work(deployed, write=False) as uow:
        doc = uow.session.scalars(select(Document)).one()
        with pytest.raises(RuntimeError, match="corrupted"):
            documents.read_document(uow, doc.id)


# -- the command -----------------------------------------------------------------------------

class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def test_the_mailgate_command_records_standard_input_and_prints_the_reference(
        deployed, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(PLAIN))
    assert cli.main(["mailgate"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "CMP-2026-000001"
    assert complaint(deployed, "CMP-2026-000001").complainant_email == "ann@example.org"


def test_the_mailgate_command_refuses_with_exit_1_and_the_reason(
        deployed, evidence, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"Subject: hi\n\nbody\n"))
    assert cli.main(["mailgate"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "refused" in err and "From" in err
    assert_nothing_recorded(deployed, evidence)


def test_the_mailgate_command_asks_for_a_retry_when_the_database_fails(
        sqlite_url, evidence, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setattr(sys, "stdin", _Stdin(PLAIN))
    assert cli.main(["mailgate"]) == cli.EX_TEMPFAIL == 75
    assert "try again" in capsys.readouterr().err


def test_the_installed_command_reads_a_message_from_a_pipe(deployed, db_url, evidence):
    executable = Path(sys.executable).with_name("complaints")
    if not executable.exists():
        pytest.skip(f"{executable} is not installed")
    env = {**os.environ, "COMPLAINTS_DATABASE_URL": db_url,
           "COMPLAINTS_EVIDENCE_DIR": str(evidence)}
    done = subprocess.run([str(executable), "mailgate"], input=b"From sender@example.org "
                          b"Mon Dec 21 09:15:31 2026\n" + PLAIN, env=env,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    reference = done.stdout.decode().strip()
    assert complaint(deployed, reference).summary == "Parcel arrived broken"
    assert [p.read_bytes() for p in files(evidence)] == [PLAIN]
