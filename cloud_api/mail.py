"""Outgoing mail: one port, two adapters, chosen by MAIL_URL.

- `smtp://host:25`, `smtp+starttls://user:password@host:587`, `smtps://user:password@host:465`:
  a real mail server (Python's smtplib).
- `file:var/mail` (the default, for the demo and a single machine): each message is
  written as an RFC 5322 `.eml` file in that directory, as a mail server would take it.

A message that cannot be handed over raises `MailUnavailable` (503 mail_unavailable):
the caller's transaction is rolled back, so nothing waits on a mail that never left.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from cloud_api.errors import ErpError

TIMEOUT_S = 10.0


class MailUnavailable(ErpError):
    status = 503


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


def message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    # one line: a name with a line break in it (a company's) must not break the header
    msg["From"], msg["To"], msg["Subject"] = sender, to, " ".join(subject.split())
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    msg.set_content(body)
    return msg


@dataclass(frozen=True)
class FileMailer:
    directory: Path
    sender: str

    def send(self, to: str, subject: str, body: str) -> None:
        msg = message(self.sender, to, subject, body)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
            (self.directory / name).write_bytes(msg.as_bytes())
        except OSError as error:
            said = f"the mail was not written: {error}"
            raise MailUnavailable("mail_unavailable", said) from error


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    security: str = "none"  # none, starttls, tls
    username: str | None = None
    password: str | None = None

    def send(self, to: str, subject: str, body: str) -> None:
        msg = message(self.sender, to, subject, body)
        try:
            if self.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=TIMEOUT_S, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S)
            with client:
                if self.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(msg)
        except (OSError, smtplib.SMTPException) as error:
            raise MailUnavailable(
                "mail_unavailable", f"the mail server did not take the mail: {error}"
            ) from error


SCHEMES = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}


def mailer_from_url(url: str, sender: str) -> Mailer:
    """The adapter MAIL_URL names; ValueError for one it does not."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileMailer(Path(unquote(parts.netloc + parts.path)), sender)
    if parts.scheme in SCHEMES and parts.hostname:
        default_port = {"none": 25, "starttls": 587, "tls": 465}[SCHEMES[parts.scheme]]
        return SmtpMailer(
            parts.hostname,
            parts.port or default_port,
            sender,
            SCHEMES[parts.scheme],
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )
    raise ValueError(f"MAIL_URL {url!r}: use file:DIR, smtp://, smtp+starttls:// or smtps://")
