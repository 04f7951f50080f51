"""A real SMTP server on loopback (aiosmtpd) for the mail tests: what it received, and
replies it can be told to give instead of accepting."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


class Recorder:
    """An aiosmtpd handler that keeps every accepted message.

    ``refuse_data`` (e.g. ``"451 4.3.0 try again later"``) makes the server answer the
    message's DATA with that reply instead of accepting it, until set back to None.
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_data: str | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.refuse_data:
            return self.refuse_data
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self.recorder.messages


@pytest.fixture(name="mail_server")
def mail_server_fixture(monkeypatch) -> Iterator[MailServer]:
    """A running SMTP server; COMPLAINTS_SMTP_URL points at it."""
    server = MailServer()
    server.controller.start()
    monkeypatch.setenv("COMPLAINTS_SMTP_URL", server.url)
    monkeypatch.setenv("COMPLAINTS_MAIL_FROM", "complaints@example.com")
    try:
        yield server
    finally:
        server.controller.stop()
