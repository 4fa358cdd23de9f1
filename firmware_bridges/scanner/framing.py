"""Splitting a scanner's byte stream into scan frames: pure, no I/O, no clock.

The caller passes the time with every call, so tests drive gaps without sleeping.

Rules (see PROTOCOL.md):
- A frame ends at the first configured terminator; at one position the longest
  terminator wins. With CR, LF and CRLF configured, CRLF ends one frame: CR ends it and
  the LF that follows ends an empty frame, which is ignored silently.
- NUL bytes are invisible: dropped on arrival, never part of a terminator or of data.
- Other C0 controls and DEL are garbage: stripped from the data and counted. GS (0x1D)
  is always kept, and so are the bytes in ``FramingConfig.keep_controls``.
- The prefix is stripped when present (counted when missing), then the AIM identifier
  is split off. A frame left with no data is dropped and counted (``dropped_empty``),
  except the bare terminator case above.
- More than ``max_frame_bytes`` before the terminator: the frame is dropped and
  counted once; bytes up to its terminator are discarded.
- A partial frame that sees no byte for ``gap_timeout_s`` is dropped, and so is one
  pending at ``reset()``; counted in ``dropped_partial`` when it held any data byte.
"""

from dataclasses import dataclass, fields

from firmware_bridges.scanner.aim import split_identifier
from firmware_bridges.scanner.errors import ScannerConfigError
from firmware_bridges.scanner.frame import ScanFrame

GS = 0x1D
NUL = 0x00
DEL = 0x7F

CR = b"\r"
LF = b"\n"
CRLF = b"\r\n"
TAB = b"\t"
DEFAULT_TERMINATORS = (CRLF, CR, LF)


@dataclass(frozen=True)
class FramingConfig:
    """How a scanner frames its output; validated on construction."""

    terminators: tuple[bytes, ...] = DEFAULT_TERMINATORS
    prefix: bytes = b""
    max_frame_bytes: int = 4096
    gap_timeout_s: float = 0.5
    aim_identifiers: bool = True
    keep_controls: bytes = b""

    def __post_init__(self) -> None:
        if not self.terminators or any(not t for t in self.terminators):
            raise ScannerConfigError("terminators must be a non-empty list of non-empty bytes")
        if any(NUL in t or GS in t for t in self.terminators):
            raise ScannerConfigError("a terminator may not contain NUL or GS (0x1D)")
        if self.max_frame_bytes < 1:
            raise ScannerConfigError("max_frame_bytes must be at least 1")
        if not self.gap_timeout_s > 0:
            raise ScannerConfigError("gap_timeout_s must be positive")
        if NUL in self.prefix or any(t in self.prefix for t in self.terminators):
            raise ScannerConfigError("the prefix may not contain NUL or a terminator")


@dataclass(frozen=True)
class FramingCounters:
    """A snapshot of what the parser saw; every counter only grows."""

    bytes_in: int = 0
    frames: int = 0
    dropped_partial: int = 0
    dropped_oversize: int = 0
    dropped_empty: int = 0
    nul_bytes: int = 0
    control_bytes: int = 0
    prefix_missing: int = 0


class FrameParser:
    """Turns chunks of bytes, split anywhere, into ``ScanFrame`` objects.

    Invariants: memory is bounded by ``max_frame_bytes`` plus the longest terminator;
    every byte fed ends up in exactly one emitted frame, one counted drop, or is
    NUL/terminator/garbage; the output does not depend on how the input was chunked
    as long as no gap of ``gap_timeout_s`` falls inside a frame.
    """

    def __init__(self, config: FramingConfig | None = None) -> None:
        self._config = config or FramingConfig()
        self._terminators = sorted(self._config.terminators, key=len, reverse=True)
        self._longest_terminator = len(self._terminators[0])
        self._kept_controls = frozenset({GS, *self._config.keep_controls})
        self._raw = bytearray()  # as received since the last boundary, NULs included
        self._body = bytearray()  # the same without NULs: terminators are matched here
        self._discarding = False  # inside an oversize frame, waiting for its terminator
        self._last_byte_s: float | None = None
        self._counts = dict.fromkeys((f.name for f in fields(FramingCounters)), 0)

    @property
    def config(self) -> FramingConfig:
        return self._config

    @property
    def partial_bytes(self) -> int:
        """Bytes of the frame in progress (0 between frames)."""
        return len(self._raw)

    def counters(self) -> FramingCounters:
        return FramingCounters(**self._counts)

    def feed(self, data: bytes, now_s: float) -> list[ScanFrame]:
        """Consume ``data`` received at ``now_s``; return the frames it completed, in order.

        A partial frame older than the gap timeout is dropped first, so bytes arriving
        after a silence never glue onto a stale fragment.
        """
        self.tick(now_s)
        frames: list[ScanFrame] = []
        for byte in data:
            frame = self._push(byte)
            if frame is not None:
                frames.append(frame)
        if data:
            self._last_byte_s = now_s
        return frames

    def tick(self, now_s: float) -> bool:
        """Drop the partial frame if no byte came for ``gap_timeout_s``; True if dropped."""
        if self._last_byte_s is None or not self._in_frame():
            return False
        if now_s - self._last_byte_s < self._config.gap_timeout_s:
            return False
        self._drop_partial()
        return True

    def reset(self) -> bool:
        """Drop the partial frame (on reconnect: its rest will never come); True if any."""
        had_partial = self._in_frame()
        self._drop_partial()
        return had_partial

    def _in_frame(self) -> bool:
        return bool(self._raw) or self._discarding

    def _push(self, byte: int) -> ScanFrame | None:
        self._counts["bytes_in"] += 1
        self._raw.append(byte)
        if byte == NUL:
            self._counts["nul_bytes"] += 1
        else:
            self._body.append(byte)
            for terminator in self._terminators:
                if self._body.endswith(terminator):
                    return self._complete(len(terminator))
        if self._discarding:
            self._trim_discarded()
        elif len(self._raw) >= self._config.max_frame_bytes + self._longest_terminator:
            # Even the longest terminator cannot make this fit any more.
            self._counts["dropped_oversize"] += 1
            self._discarding = True
            self._trim_discarded()
        return None

    def _trim_discarded(self) -> None:
        # Keep only what could still be the start of a terminator.
        keep = self._longest_terminator - 1
        del self._raw[: len(self._raw) - keep]
        del self._body[: len(self._body) - keep]

    def _complete(self, terminator_len: int) -> ScanFrame | None:
        raw = bytes(self._raw)
        body = bytes(self._body[:-terminator_len])
        was_discarding = self._discarding
        self._clear()
        if was_discarding:
            return None
        if len(raw) - terminator_len > self._config.max_frame_bytes:
            self._counts["dropped_oversize"] += 1
            return None
        return self._frame_from(body, raw, terminator_len)

    def _frame_from(self, body: bytes, raw: bytes, terminator_len: int) -> ScanFrame | None:
        content = self._strip_controls(body)
        prefix = self._config.prefix
        if prefix and content.startswith(prefix):
            content = content[len(prefix) :]
        elif prefix and content:
            self._counts["prefix_missing"] += 1
        symbology, data = (
            split_identifier(content) if self._config.aim_identifiers else (None, content)
        )
        if not data:
            # A lone terminator (the LF of a CRLF) is not worth counting; anything else is.
            if len(raw) > terminator_len:
                self._counts["dropped_empty"] += 1
            return None
        self._counts["frames"] += 1
        return ScanFrame(symbology=symbology, data=data, raw=raw)

    def _strip_controls(self, body: bytes) -> bytes:
        kept = bytes(b for b in body if self._is_kept(b))
        self._counts["control_bytes"] += len(body) - len(kept)
        return kept

    def _is_kept(self, byte: int) -> bool:
        return (byte >= 0x20 and byte != DEL) or byte in self._kept_controls

    def _drop_partial(self) -> None:
        if not self._discarding and any(self._is_kept(b) for b in self._body):
            self._counts["dropped_partial"] += 1
        self._clear()

    def _clear(self) -> None:
        self._raw.clear()
        self._body.clear()
        self._discarding = False
        self._last_byte_s = None
