"""One scan as it came off the wire, after framing."""

from dataclasses import dataclass

from firmware_bridges.scanner.aim import is_gs1, symbology_name


@dataclass(frozen=True)
class ScanFrame:
    """A complete scan.

    Invariants: ``data`` is never empty; it holds no NUL and no control byte except GS
    (0x1D, the FNC1 separator) and any explicitly kept ones; the configured prefix and
    the AIM identifier are not part of it. ``raw`` is every byte received for this
    frame, as received (NULs, garbage, prefix, identifier, terminator), for audit.
    """

    symbology: str | None
    data: bytes
    raw: bytes

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8, falling back to Latin-1.

        UTF-8 first because QR codes carry it and GS1 data are ASCII (a subset); Latin-1
        as the fallback because it maps every byte, so decoding never fails and
        ``text`` round-trips to the same bytes.
        """
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return self.data.decode("latin-1")

    @property
    def symbology_name(self) -> str | None:
        return symbology_name(self.symbology)

    @property
    def is_gs1(self) -> bool:
        return is_gs1(self.symbology)
