"""Framing of scanner bytes (pure): terminators, identifiers, robustness, counters.

Includes acceptance scenario 8 (framing fuzz) as a hypothesis property.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridges.scanner.aim import SYMBOLOGY_NAMES, is_gs1, split_identifier
from firmware_bridges.scanner.errors import ScannerConfigError
from firmware_bridges.scanner.frame import ScanFrame
from firmware_bridges.scanner.framing import (
    CR,
    CRLF,
    DEFAULT_TERMINATORS,
    LF,
    TAB,
    FrameParser,
    FramingConfig,
)

GS = b"\x1d"


def feed_all(parser: FrameParser, data: bytes, now_s: float = 0.0) -> list[ScanFrame]:
    return parser.feed(data, now_s)


def datas(frames: list[ScanFrame]) -> list[tuple[str | None, bytes]]:
    return [(f.symbology, f.data) for f in frames]


# --- terminators --------------------------------------------------------------------


def test_one_frame_with_identifier() -> None:
    parser = FrameParser()
    [frame] = feed_all(parser, b"]C1010703206980498815210526\r")
    assert frame == ScanFrame(
        symbology="]C1", data=b"010703206980498815210526", raw=b"]C1010703206980498815210526\r"
    )
    assert (frame.symbology_name, frame.is_gs1) == ("GS1-128", True)
    assert parser.counters().frames == 1
    assert parser.partial_bytes == 0


@pytest.mark.parametrize("terminator", [CR, LF, CRLF])
def test_default_terminators_give_one_frame_each(terminator: bytes) -> None:
    parser = FrameParser()
    frames = feed_all(parser, b"]C0A1" + terminator + b"]C0B2" + terminator)
    assert datas(frames) == [("]C0", b"A1"), ("]C0", b"B2")]
    counters = parser.counters()
    assert (counters.frames, counters.dropped_empty) == (2, 0)


def test_crlf_split_across_reads_counts_once() -> None:
    parser = FrameParser()
    assert datas(parser.feed(b"]C0A1\r", 0.0)) == [("]C0", b"A1")]
    assert parser.feed(b"\n", 0.0) == []
    assert datas(parser.feed(b"]C0B2\r\n", 0.0)) == [("]C0", b"B2")]
    assert parser.counters().frames == 2
    assert parser.counters().dropped_empty == 0


def test_crlf_only_keeps_a_lone_cr_out_of_the_data() -> None:
    parser = FrameParser(FramingConfig(terminators=(CRLF,)))
    frames = feed_all(parser, b"AB\rC\r\n")
    assert datas(frames) == [(None, b"ABC")]
    assert parser.counters().control_bytes == 1


def test_tab_and_multibyte_terminators() -> None:
    tab = FrameParser(FramingConfig(terminators=(TAB,)))
    assert datas(feed_all(tab, b"]E05901234123457\t]C0X\t")) == [
        ("]E0", b"5901234123457"),
        ("]C0", b"X"),
    ]
    custom = FrameParser(FramingConfig(terminators=(b"#END",)))
    frames = [f for byte in b"A#E#END" for f in custom.feed(bytes([byte]), 0.0)]
    assert datas(frames) == [(None, b"A#E")]


def test_several_frames_per_read_and_one_byte_reads_agree() -> None:
    stream = b"]C0WO-0001\r]C1010703206980498810A1" + GS + b"15210526\r\n]E05901234123457\n"
    whole = FrameParser().feed(stream, 0.0)
    parser = FrameParser()
    bytewise = [f for byte in stream for f in parser.feed(bytes([byte]), 0.0)]
    assert whole == bytewise
    assert datas(whole) == [
        ("]C0", b"WO-0001"),
        ("]C1", b"010703206980498810A1\x1d15210526"),
        ("]E0", b"5901234123457"),
    ]


# --- robustness ---------------------------------------------------------------------


def test_gs_is_kept_nul_is_stripped_raw_is_as_received() -> None:
    parser = FrameParser()
    raw = b"\x00]C1\x0001070320698049881\x0000329" + GS + b"15210526\x00\r"
    [frame] = feed_all(parser, raw)
    assert frame.data == b"0107032069804988100329\x1d15210526"
    assert frame.raw == raw
    assert parser.counters().nul_bytes == 4


def test_garbage_controls_are_stripped_and_counted() -> None:
    parser = FrameParser()
    frames = feed_all(parser, b"\x1b\x07]C0WO\x01-0001\x7f\r\x02\x03\r]C0OK\r")
    assert datas(frames) == [("]C0", b"WO-0001"), ("]C0", b"OK")]
    counters = parser.counters()
    assert counters.control_bytes == 6
    assert counters.dropped_empty == 1  # the frame that was only garbage
    assert counters.frames == 2


def test_iso_15434_controls_can_be_kept() -> None:
    parser = FrameParser(FramingConfig(keep_controls=b"\x1e\x04"))
    [frame] = feed_all(parser, b"]d1[)>\x1e06\x1dP123\x1e\x04\r")
    assert frame.data == b"[)>\x1e06\x1dP123\x1e\x04"


def test_high_bytes_are_data_and_text_decodes() -> None:
    parser = FrameParser()
    utf8, latin1 = feed_all(parser, "]Q1批号-7\r".encode() + b"]Q1Gr\xfc\xdfe\r")
    assert utf8.text == "批号-7"
    assert latin1.text == "Grüße"


def test_prefix_is_stripped_and_a_missing_prefix_counted() -> None:
    parser = FrameParser(FramingConfig(prefix=b"@@"))
    frames = feed_all(parser, b"@@]C0A\r]C0B\r")
    assert datas(frames) == [("]C0", b"A"), ("]C0", b"B")]
    assert parser.counters().prefix_missing == 1


def test_identifiers_can_be_left_in_the_data() -> None:
    parser = FrameParser(FramingConfig(aim_identifiers=False))
    assert datas(feed_all(parser, b"]C0A\r")) == [(None, b"]C0A")]


def test_identifier_alone_is_an_empty_frame() -> None:
    parser = FrameParser()
    assert feed_all(parser, b"]C0\r") == []
    assert parser.counters().dropped_empty == 1


def test_oversize_frame_is_dropped_and_counted_once() -> None:
    parser = FrameParser()
    fits = b"A" * 4096
    frames = feed_all(parser, fits + b"\r" + b"B" * 10_000 + b"\r\n" + b"]C0NEXT\r")
    assert datas(frames) == [(None, fits), ("]C0", b"NEXT")]
    assert parser.counters().dropped_oversize == 1
    assert parser.partial_bytes == 0


@pytest.mark.parametrize(
    ("terminators", "terminator"), [((CR,), CR), ((CRLF,), CRLF), (DEFAULT_TERMINATORS, CR)]
)
def test_frame_one_byte_over_the_limit_is_dropped(
    terminators: tuple[bytes, ...], terminator: bytes
) -> None:
    parser = FrameParser(FramingConfig(terminators=terminators, max_frame_bytes=8))
    frames = feed_all(parser, b"123456789" + terminator + b"12345678" + terminator)
    assert datas(frames) == [(None, b"12345678")]
    assert parser.counters().dropped_oversize == 1


def test_oversize_without_terminator_then_gap_does_not_eat_the_next_frame() -> None:
    parser = FrameParser(FramingConfig(max_frame_bytes=16, gap_timeout_s=0.5))
    assert parser.feed(b"X" * 100, 0.0) == []
    assert parser.partial_bytes < 16  # memory stays bounded while discarding
    assert datas(parser.feed(b"]C0OK\r", 1.0)) == [("]C0", b"OK")]
    counters = parser.counters()
    assert (counters.dropped_oversize, counters.dropped_partial) == (1, 0)


# --- gaps and reset -----------------------------------------------------------------


def test_partial_frame_dropped_after_gap() -> None:
    parser = FrameParser(FramingConfig(gap_timeout_s=0.5))
    assert parser.feed(b"]C0LOST", 10.0) == []
    assert parser.tick(10.4) is False
    assert parser.tick(10.5) is True
    assert parser.partial_bytes == 0
    assert datas(parser.feed(b"]C0KEPT\r", 11.0)) == [("]C0", b"KEPT")]
    assert parser.counters().dropped_partial == 1


def test_stale_partial_is_dropped_when_bytes_arrive_after_the_gap() -> None:
    parser = FrameParser(FramingConfig(gap_timeout_s=0.5))
    parser.feed(b"]C0LOST", 0.0)
    frames = parser.feed(b"]C0KEPT\r", 2.0)  # no tick() in between
    assert datas(frames) == [("]C0", b"KEPT")]
    assert parser.counters().dropped_partial == 1


def test_slow_bytes_within_the_gap_make_one_frame() -> None:
    parser = FrameParser(FramingConfig(gap_timeout_s=0.5))
    frames = [f for i, byte in enumerate(b"]C0SLOW\r") for f in parser.feed(bytes([byte]), i * 0.4)]
    assert datas(frames) == [("]C0", b"SLOW")]
    assert parser.counters().dropped_partial == 0


def test_garbage_only_partial_is_not_counted_as_a_lost_scan() -> None:
    parser = FrameParser()
    parser.feed(b"\x00\x06\x00", 0.0)
    assert parser.tick(5.0) is True
    assert parser.counters().dropped_partial == 0


def test_reset_drops_the_partial_frame() -> None:
    parser = FrameParser()
    assert parser.reset() is False
    parser.feed(b"]C0HALF", 0.0)
    assert parser.reset() is True
    assert datas(parser.feed(b"]C0WHOLE\r", 0.0)) == [("]C0", b"WHOLE")]
    assert parser.counters().dropped_partial == 1


# --- config and identifiers ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"terminators": ()},
        {"terminators": (b"",)},
        {"terminators": (GS,)},
        {"terminators": (b"\x00",)},
        {"max_frame_bytes": 0},
        {"gap_timeout_s": 0},
        {"prefix": b"\r@"},
    ],
)
def test_bad_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ScannerConfigError) as caught:
        FramingConfig(**kwargs)
    assert caught.value.code == "scanner_config_invalid"


def test_identifier_table() -> None:
    assert split_identifier(b"]d2010703206980498810A") == ("]d2", b"010703206980498810A")
    assert split_identifier(b"]Q1https://x") == ("]Q1", b"https://x")
    assert split_identifier(b"]]C0") == (None, b"]]C0")
    assert split_identifier(b"]C") == (None, b"]C")
    for identifier in ("]C0", "]C1", "]E0", "]E4", "]e0", "]d1", "]d2", "]Q1", "]Q3", "]I1", "]A0"):
        assert identifier in SYMBOLOGY_NAMES
    gs1 = {s for s in SYMBOLOGY_NAMES if is_gs1(s)}
    assert {"]C1", "]e0", "]d2", "]Q3"} <= gs1
    assert not gs1 & {"]C0", "]E0", "]E4", "]d1", "]Q1", "]I1", "]A0"}
    assert is_gs1(None) is False


# --- scenario 8: framing fuzz ------------------------------------------------------

IDENTIFIERS = [None, "]C0", "]C1", "]E0", "]d2", "]Q1"]
DATA_BYTES = st.sampled_from([*range(0x20, 0x7F), 0x1D, 0xC3, 0xA9])
GARBAGE_BYTES = st.sampled_from([0x00, 0x01, 0x02, 0x07, 0x08, 0x09, 0x1B, 0x1C, 0x7F])


@st.composite
def frame_contents(draw: st.DrawFn) -> tuple[str | None, bytes]:
    symbology = draw(st.sampled_from(IDENTIFIERS))
    data = bytes(draw(st.lists(DATA_BYTES, min_size=1, max_size=40)))
    if symbology is None and data.startswith(b"]"):
        data = b"x" + data  # otherwise it could read as an identifier
    return symbology, data


def sprinkle(draw: st.DrawFn, data: bytes, junk: st.SearchStrategy[int]) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        out.insert(draw(st.integers(0, len(out))), draw(junk))
    return bytes(out)


@st.composite
def streams(draw: st.DrawFn):
    """Segments of bytes separated by silences, and the frames that must come out.

    A segment may end with a partial frame (its terminator never comes); the silence
    after it must drop it. Garbage and NULs go anywhere, NULs even inside CRLF.
    """
    segments: list[bytes] = []
    expected: list[tuple[str | None, bytes]] = []
    partials = 0
    for _ in range(draw(st.integers(1, 4))):
        segment = bytearray()
        for _ in range(draw(st.integers(0, 5))):
            if draw(st.booleans()):
                segment += bytes(draw(st.lists(GARBAGE_BYTES, max_size=4)))
            symbology, data = draw(frame_contents())
            body = sprinkle(draw, (symbology or "").encode() + data, GARBAGE_BYTES)
            terminator = draw(st.sampled_from([CR, LF, CRLF, b"\r\x00\n"]))
            segment += body + terminator
            expected.append((symbology, data))
        if draw(st.booleans()):
            symbology, data = draw(frame_contents())
            segment += (symbology or "").encode() + data
            partials += 1
        segments.append(bytes(segment))
    return segments, expected, partials


def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    if draw(st.booleans()):
        return [bytes([b]) for b in data]  # 1-byte reads
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=8)))
    bounds = [0, *[c for c in cuts if c < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if data[a:b]]


@given(streams(), st.data())
def test_scenario_8_framing_fuzz(stream, data) -> None:
    segments, expected, partials = stream
    parser = FrameParser(FramingConfig(gap_timeout_s=0.5))
    frames: list[ScanFrame] = []
    now_s = 0.0
    for segment in segments:
        for chunk in chunked(data.draw, segment):
            frames += parser.feed(chunk, now_s)
            now_s += 0.001  # bytes of one burst: well inside the gap
        now_s += 1.0  # silence
        parser.tick(now_s)
    assert datas(frames) == expected
    counters = parser.counters()
    assert counters.frames == len(expected)
    assert counters.dropped_partial == partials
    assert counters.dropped_oversize == 0
    assert parser.partial_bytes == 0
