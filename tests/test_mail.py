"""cloud_api/mail.py: the SMTP adapter hands a message to a real SMTP server on
loopback (aiosmtpd), with authentication when the URL carries a user; the file adapter
writes what a server would take; a bad MAIL_URL is refused."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cloud_api.mail import FileMailer, MailUnavailable, SmtpMailer, mailer_from_url


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (b"erp", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticator,
        auth_require_tls=False,  # loopback only, in this test
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def test_the_smtp_adapter_hands_the_mail_to_a_real_server(smtp: Any) -> None:
    controller, inbox = smtp
    url = f"smtp://127.0.0.1:{controller.port}"
    mailer = mailer_from_url(url, "ERP <no-reply@erp.example>")
    assert isinstance(mailer, SmtpMailer)
    mailer.send("owner@example.com", "Your code", "    12345678\\n")
    ((sender, to, raw),) = inbox.messages
    assert (sender, to) == ("no-reply@erp.example", ["owner@example.com"])
    msg = email.message_from_bytes(raw)
    assert msg["Subject"] == "Your code" and msg["Message-ID"]
    assert "12345678" in msg.get_payload()


def test_the_smtp_adapter_logs_in_and_a_wrong_password_is_mail_unavailable(smtp: Any) -> None:
    controller, inbox = smtp
    good = mailer_from_url(f"smtp://erp:s3cret@127.0.0.1:{controller.port}", "erp@localhost")
    good.send("a@example.com", "s", "b")
    assert len(inbox.messages) == 1
    bad = mailer_from_url(f"smtp://erp:wrong@127.0.0.1:{controller.port}", "erp@localhost")
    with pytest.raises(MailUnavailable) as refused:
        bad.send("a@example.com", "s", "b")
    assert refused.value.code == "mail_unavailable" and len(inbox.messages) == 1


def test_the_file_adapter_and_the_urls(tmp_path: Path) -> None:
    mailer = mailer_from_url(f"file:{tmp_path / 'mail'}", "erp@localhost")
    assert isinstance(mailer, FileMailer)
    mailer.send("a@example.com", "Subject", "Body")
    (written,) = (tmp_path / "mail").glob("*.eml")
    msg = email.message_from_bytes(written.read_bytes())
    assert (msg["To"], msg["Subject"], msg["From"]) == ("a@example.com", "Subject", "erp@localhost")
    starttls = mailer_from_url("smtp+starttls://u:p%40ss@mail.example", "erp@localhost")
    assert starttls == SmtpMailer("mail.example", 587, "erp@localhost", "starttls", "u", "p@ss")
    assert mailer_from_url("smtps://mail.example", "x").port == 465  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="MAIL_URL"):
        mailer_from_url("http://mail.example", "x")
    blocked = FileMailer(tmp_path / "file-not-dir" / "x", "erp@localhost")
    (tmp_path / "file-not-dir").write_text("")
    with pytest.raises(MailUnavailable):
        blocked.send("a@example.com", "s", "b")
