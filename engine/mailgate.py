"""The mail gate: one e-mail message in, one complaint (channel ``email``) recorded.

``record_email`` parses an RFC 822 message and records it as a complaint in the
caller's unit of work, then keeps the whole message, as received, as the complaint's
evidence (``message.eml``, ``message/rfc822``; engine.documents). Both happen in one
transaction: a message that cannot be kept as evidence records no complaint.

From the message:

- complainant: the display name and address of ``From`` (the address stands in for
  the name when there is none); a message without a From address is refused;
- summary: ``Subject``, white space collapsed, at most 200 characters; "(no subject)"
  when it is empty;
- description: the text/plain body, or the text/html body reduced to plain text; a
  message without text is refused. Text longer than the register takes is cut, with
  a note: the full message is in the evidence;
- received_at: the ``Date`` header when it is valid and not in the future, else now.

Refusals are InvalidData with a message that says why (the CLI bounces the message);
other errors (database, disk) leave nothing recorded and are worth a retry.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from engine import clock, documents
from engine.audit import Actor
from engine.db import UnitOfWork
from engine.errors import InvalidData
from engine.register import SUMMARY_MAX, TEXT_MAX, record_complaint

NO_SUBJECT = "(no subject)"
EVIDENCE_FILENAME = "message.eml"
EVIDENCE_TYPE = "message/rfc822"
NAME_MAX = 200
_TRUNCATED = "\n\n[cut: the full message is kept as evidence, message.eml]"


def record_email(uow: UnitOfWork, raw: bytes, actor: Actor) -> str:
    """Record the e-mail ``raw`` as a complaint with the message as evidence; its reference."""
    if not isinstance(raw, bytes | bytearray):
        raise InvalidData("the message must be given as bytes")
    raw = _without_mbox_line(bytes(raw))
    if not raw.strip():
        raise InvalidData("the message is empty")
    documents.check_document(EVIDENCE_TYPE, raw)  # refuse an oversize message up front
    intake = parse_email(raw)
    complaint = record_complaint(uow, intake, actor)
    documents.store_document(uow, complaint.reference, EVIDENCE_FILENAME, EVIDENCE_TYPE,
                             raw, actor)
    return complaint.reference


def parse_email(raw: bytes) -> dict:
    """The intake data (register names) of one message; InvalidData if it has none."""
    try:
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise InvalidData(f"the message cannot be parsed: {exc}") from None
    if not isinstance(message, EmailMessage) or not message.keys():
        raise InvalidData("the message has no headers: it is not an RFC 822 message")
    name, address = _sender(message)
    summary = _one_line(_header(message, "Subject"))[:SUMMARY_MAX].strip() or NO_SUBJECT
    description = _body_text(message)
    if not description:
        raise InvalidData("the message has no text: a complaint needs a description",
                          {"description": ["the message body is empty"]})
    if len(description) > TEXT_MAX:
        description = description[: TEXT_MAX - len(_TRUNCATED)].rstrip() + _TRUNCATED
    return {
        "channel": "email",
        "received_at": _received_at(message).isoformat(),
        "complainant": {"name": name, "email": address},
        "summary": summary,
        "description": description,
    }


def _without_mbox_line(raw: bytes) -> bytes:
    """Drop the ``From sender date`` line some MTAs put before the headers."""
    if raw.startswith(b"From "):
        _, _, rest = raw.partition(b"\n")
        return rest
    return raw


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message[name] or "")
    except Exception:  # a header so broken that the policy cannot parse it
        return ""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _sender(message: EmailMessage) -> tuple[str, str]:
    try:
        header = message["From"]
        addresses = list(getattr(header, "addresses", ()) or ())
    except Exception:
        addresses = []
    for address in addresses:
        addr = (address.addr_spec or "").strip()
        if addr and "@" in addr:
            name = _one_line(address.display_name or "") or addr
            return name[:NAME_MAX].strip(), addr
    raise InvalidData("the message has no valid From address: who is complaining?",
                      {"complainant.email": ["no sender address in From"]})


def _received_at(message: EmailMessage) -> datetime:
    now = clock.now()
    try:
        header = message["Date"]
        when = getattr(header, "datetime", None)
    except Exception:
        when = None
    if not isinstance(when, datetime):
        return now
    if when.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3)
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return now if when > now else when


def _body_text(message: EmailMessage) -> str:
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        if part is None:
            continue
        text = _part_text(part)
        if kind == "html":
            text = html_to_text(text)
        text = _tidy(text)
        if text:
            return text
    return ""


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        return payload.decode("utf-8", errors="replace")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _TextOfHtml(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                         "blockquote", "pre", "table", "ul", "ol", "hr"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """Crude: tags dropped, scripts and styles skipped, blocks on lines of their own."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.parts).split("\n"))
