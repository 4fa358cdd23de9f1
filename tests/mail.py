"""The mail the tests' servers send: MAIL_URL points at a directory of this session
(cloud_api/mail.py's file adapter, set before any settings are read; conftest imports
this module first), and `mailed_code` reads the newest code sent to an address. The
SMTP adapter is tested against a real SMTP server (tests/test_mail.py)."""

from __future__ import annotations

import email
import os
import re
import tempfile
from email.message import Message
from pathlib import Path

MAIL_DIR = Path(tempfile.mkdtemp(prefix="erp-test-mail-"))
os.environ["MAIL_URL"] = f"file:{MAIL_DIR}"


def mails_to(address: str, directory: Path = MAIL_DIR) -> list[Message]:
    """Every message to `address`, oldest first (the files are named by time)."""
    found = []
    for path in sorted(directory.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes())
        if msg["To"] == address:
            found.append(msg)
    return found


def mailed_code(address: str) -> str:
    """The code in the newest mail to `address`."""
    sent = mails_to(address)
    assert sent, f"no mail to {address}"
    body = sent[-1].get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(r"^\s+(\d{8})\s*$", body.decode(), re.M)
    assert match, body
    return match.group(1)
