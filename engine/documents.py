"""Evidence kept with a complaint: a ``documents`` row per file, the bytes on disk.

The row (engine.models.Document) says which complaint the file belongs to, its name,
type, size and SHA-256, and who added it when. The bytes are kept outside the
database, under the evidence directory (setting ``COMPLAINTS_EVIDENCE_DIR``, default
``var/evidence/``), content-addressed: ``<dir>/ab/cd/abcd...`` for SHA-256 ``abcd...``.
Two documents with the same bytes share one file.

A file is written to a temporary name in its final directory, flushed to disk and
renamed into place (mode 0600), before the recording transaction commits; if that
transaction rolls back, a file this call created is removed again. (A concurrent
transaction adding the very same bytes at the same moment could in principle lose
the file to such a clean-up; ``read_document`` reports that as a missing file.)

Limits: at most ``COMPLAINTS_EVIDENCE_MAX_BYTES`` bytes (default 10 MiB) and only the
content types of ``ALLOWED_CONTENT_TYPES``; anything else is InvalidData.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.db import UnitOfWork
from engine.errors import InvalidData, NotFound
from engine.forms import evidence_fields
from engine.models import Complaint, Document
from engine.settings import VAR_DIR

ALLOWED_CONTENT_TYPES = frozenset({
    "message/rfc822", "application/pdf", "image/png", "image/jpeg", "text/plain",
})
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
FILENAME_MAX = 255


def evidence_dir() -> Path:
    """Where evidence bytes are kept (``COMPLAINTS_EVIDENCE_DIR``, default var/evidence)."""
    configured = os.environ.get("COMPLAINTS_EVIDENCE_DIR")
    return Path(configured) if configured else VAR_DIR / "evidence"


def max_bytes() -> int:
    """The largest document accepted (``COMPLAINTS_EVIDENCE_MAX_BYTES``, default 10 MiB)."""
    configured = os.environ.get("COMPLAINTS_EVIDENCE_MAX_BYTES")
    if not configured:
        return DEFAULT_MAX_BYTES
    try:
        value = int(configured)
    except ValueError:
        raise ValueError(
            f"COMPLAINTS_EVIDENCE_MAX_BYTES={configured!r} is not a whole number of bytes"
        ) from None
    if value <= 0:
        raise ValueError("COMPLAINTS_EVIDENCE_MAX_BYTES must be positive")
    return value


def normal_content_type(content_type: str) -> str:
    """``Text/Plain; charset=utf-8`` -> ``text/plain``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def content_type_of(filename: str, declared: str | None) -> str:
    """The type of an uploaded file: as the browser declared it, unless it declared
    nothing useful (empty or ``application/octet-stream``), then guessed from the name."""
    kind = normal_content_type(declared or "")
    if kind in ("", "application/octet-stream"):
        guessed, _ = mimetypes.guess_type(safe_filename(filename), strict=False)
        if guessed:
            return normal_content_type(guessed)
    return kind


def describe_limits() -> str:
    """The limits in words, for forms: e.g. "PDF, PNG, JPEG, plain text or a saved
    e-mail; at most 10 MiB each"."""
    limit = max_bytes()
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    return f"PDF, PNG, JPEG, plain text or a saved e-mail (.eml); at most {size} each"


def check_document(content_type: str, data: bytes) -> str:
    """The normalised content type, or InvalidData saying why the document is refused."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidData("a document's content must be bytes")
    kind = normal_content_type(content_type)
    if kind not in ALLOWED_CONTENT_TYPES:
        raise InvalidData(
            f"documents of type {kind or '(none)'!r} are not accepted; accepted types: "
            f"{', '.join(sorted(ALLOWED_CONTENT_TYPES))}",
            {"content_type": ["not an accepted type"]})
    limit = max_bytes()
    if len(data) > limit:
        raise InvalidData(
            f"the document is {len(data)} bytes; at most {limit} bytes are accepted",
            {"data": [f"larger than {limit} bytes"]})
    if not data:
        raise InvalidData("the document is empty", {"data": ["empty"]})
    return kind


def safe_filename(filename: str) -> str:
    """A display name only (never a path): last path component, no control characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", str(filename or "")).replace("\\", "/")
    name = name.rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        name = "document"
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: FILENAME_MAX - len(ext) - 1] + dot + ext) if dot and len(ext) < 20 \
            else name[:FILENAME_MAX]
    return name


def blob_path(sha256: str, root: Path | None = None) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    root = root or evidence_dir()
    return root / sha256[:2] / sha256[2:4] / sha256


def _write_blob(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` (atomically, mode 0600); True if this call created it."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (not on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return True


def _complaint(uow: UnitOfWork, reference: str) -> Complaint:
    complaint = uow.session.scalars(
        select(Complaint).where(Complaint.reference == reference)).one_or_none()
    if complaint is None:
        raise NotFound(f"no complaint {reference}")
    return complaint


def store_document(uow: UnitOfWork, reference: str, filename: str, content_type: str,
                   data: bytes, actor: Actor) -> Document:
    """Keep ``data`` as evidence of complaint ``reference``, in the caller's unit of work."""
    kind = check_document(content_type, data)
    data = bytes(data)
    complaint = _complaint(uow, reference)
    sha256 = hashlib.sha256(data).hexdigest()
    path = blob_path(sha256)
    if _write_blob(path, data):
        uow.after_rollback(lambda: path.unlink(missing_ok=True))
    document = Document(complaint_id=complaint.id, filename=safe_filename(filename),
                        content_type=kind, size=len(data), sha256=sha256,
                        created_at=clock.now(), created_by=actor.username)
    uow.session.add(document)
    uow.session.flush()
    record(uow.session, actor, "document_added", instance_id=complaint.instance_id,
           details={"reference": reference, "document_id": document.id,
                    "filename": document.filename, "content_type": kind,
                    "size": len(data), "sha256": sha256})
    return document


def list_documents(uow: UnitOfWork, reference: str) -> list[Document]:
    complaint = _complaint(uow, reference)
    return list(uow.session.scalars(
        select(Document).where(Document.complaint_id == complaint.id).order_by(Document.id)))


def read_document(uow: UnitOfWork, document_id: int) -> tuple[Document, bytes]:
    """A document and its bytes, checked against the SHA-256 recorded when it was added.

    Permission checks (who may see a complaint's evidence) are the caller's business.
    """
    document = uow.session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    path = blob_path(document.sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"the bytes of document {document_id} are missing from {path}") from None
    if hashlib.sha256(data).hexdigest() != document.sha256:
        raise RuntimeError(f"the bytes of document {document_id} at {path} are corrupted")
    return document, data


def evidence_reference(document: Document) -> dict[str, Any]:
    """How a task's form data names a stored document (engine.forms, evidence fields)."""
    return {"document_id": document.id, "filename": document.filename}


def resolve_evidence(session: Session, complaint_id: int | None, schema: dict | None,
                     data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each evidence reference checked and completed from its record.

    Every ``document_id`` given in an evidence field must be a document of the task's
    complaint (``complaint_id``); its ``filename`` is taken from the record, whatever
    was sent. Anything else is InvalidData at that field (a document of another case
    is reported exactly like one that does not exist). Values not shaped like
    references are left for the form's schema to reject.
    """
    if not isinstance(data, dict):
        return data
    result = dict(data)
    problems: dict[str, list[str]] = {}
    for name in evidence_fields(schema):
        items = data.get(name)
        if not isinstance(items, list):
            continue
        resolved = []
        for item in items:
            document_id = item.get("document_id") if isinstance(item, dict) else None
            if not isinstance(document_id, int) or isinstance(document_id, bool):
                resolved.append(item)
                continue
            document = session.get(Document, document_id)
            if document is None or complaint_id is None \
                    or document.complaint_id != complaint_id:
                problems.setdefault(name, []).append(
                    f"there is no document {document_id} kept with this case")
                continue
            resolved.append({**item, **evidence_reference(document)})
        result[name] = resolved
    if problems:
        raise InvalidData("the form names documents that are not evidence of this case",
                          problems)
    return result
