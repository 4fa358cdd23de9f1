"""What the host tells the scanner after a scan: good read or bad read.

The answer is written only after the host's callback returned, and the callback
returns only after the scan is durably committed: the operator's good-read beep
therefore means "stored", never "received".
"""

from dataclasses import dataclass

from firmware_bridges.scanner.errors import ScannerConfigError

ACK = b"\x06"
NAK = b"\x15"


@dataclass(frozen=True)
class Answer:
    """The host's verdict on one scan; ``text`` is for logs, and for displays if enabled."""

    ok: bool
    text: str | None = None

    @classmethod
    def good(cls, text: str | None = None) -> "Answer":
        return cls(ok=True, text=text)

    @classmethod
    def bad(cls, text: str | None = None) -> "Answer":
        return cls(ok=False, text=text)


@dataclass(frozen=True)
class AnswerConfig:
    """Bytes sent back per verdict: ACK/NAK by default, or a scanner's beep commands.

    With ``send_text`` the answer text follows, ASCII with control bytes blanked, then
    ``text_terminator`` (for scanners and terminals with a display).
    """

    good: bytes = ACK
    bad: bytes = NAK
    send_text: bool = False
    text_terminator: bytes = b"\r"

    def __post_init__(self) -> None:
        if not self.good or not self.bad:
            raise ScannerConfigError("good and bad answers must be non-empty byte strings")

    def bytes_for(self, answer: Answer) -> bytes:
        head = self.good if answer.ok else self.bad
        if not self.send_text or not answer.text:
            return head
        return head + _printable_ascii(answer.text) + self.text_terminator


def _printable_ascii(text: str) -> bytes:
    # A control byte in the text could end the scanner's display line early or be
    # taken as a command, so each becomes a space.
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    return cleaned.encode("ascii")
