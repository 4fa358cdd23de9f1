"""GS1 element-string encoding, checked against biip (an independent GS1 parser)."""

from datetime import date, timedelta
from decimal import Decimal

import biip
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_bridges.gs1.encode import (
    AI_SPECS,
    CSET_82,
    GS,
    Gs1EncodeError,
    date_yymmdd,
    element_string,
    gs1_check_digit,
    gtin14,
    human_readable,
    needs_separator,
    net_weight_kg,
    variable_count,
)


def biip_fields(encoded: str) -> list[tuple[str, str]]:
    result = biip.parse("]C1" + encoded)
    assert result.gs1_message is not None, result.gs1_message_error
    return [(e.ai.ai, e.value) for e in result.gs1_message.element_strings]


def error_code(fields: list[tuple[str, str]]) -> str:
    with pytest.raises(Gs1EncodeError) as info:
        element_string(fields)
    return info.value.code


# --- check digits and GTINs -------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        ("0703206980498", "8"),  # GTIN-14 07032069804988 (EDGE.md)
        ("590123412345", "7"),  # EAN-13 5901234123457
        ("37340030680998173", "3"),  # SSCC 373400306809981733
        ("9638507", "4"),  # EAN-8 96385074
        ("0", "0"),
    ],
)
def test_check_digit_known_keys(payload: str, check: str) -> None:
    assert gs1_check_digit(payload) == check


@given(st.text(alphabet="0123456789", min_size=1, max_size=17), st.integers(0, 9))
def test_check_digit_detects_every_single_digit_change(payload: str, delta: int) -> None:
    key = payload + gs1_check_digit(payload)
    changed = str((int(key[0]) + delta) % 10) + key[1:]
    if delta:
        assert gs1_check_digit(changed[:-1]) != changed[-1]
    else:
        assert gs1_check_digit(changed[:-1]) == changed[-1]


def test_gtin14_pads_and_validates() -> None:
    assert gtin14("5901234123457") == "05901234123457"
    assert gtin14("96385074") == "00000096385074"
    assert gtin14("07032069804988") == "07032069804988"
    for bad, code in [
        ("5901234123458", "bad_check_digit"),
        ("590123412345", "bad_check_digit"),  # a 12-digit string with a wrong UPC check
        ("59012341234", "invalid_gtin"),
        ("590123412345X", "invalid_gtin"),
        ("", "invalid_gtin"),
    ]:
        with pytest.raises(Gs1EncodeError) as info:
            gtin14(bad)
        assert info.value.code == code, bad


# --- element strings: the examples of EDGE.md ----------------------------------------


def test_fixed_length_fields_need_no_separator() -> None:
    fields = [("01", "07032069804988"), ("15", "210526"), ("10", "0329")]
    assert element_string(fields) == "010703206980498815210526100329"
    assert biip_fields(element_string(fields)) == fields


def test_variable_field_ends_with_gs_unless_last() -> None:
    fields = [("01", "07032069804988"), ("10", "0329"), ("15", "210526")]
    assert element_string(fields) == "0107032069804988100329" + GS + "15210526"
    assert biip_fields(element_string(fields)) == fields
    assert not element_string(fields[:2]).endswith(GS)


def test_weight_date_and_sscc() -> None:
    assert element_string([("3105", "123456")]) == "3105123456"
    assert element_string([("17", "211200")]) == "17211200"  # DD=00: end of month
    assert element_string([("00", "373400306809981733")]) == "00373400306809981733"
    assert error_code([("00", "376130321109103421")]) == "bad_check_digit"


def test_separator_rule_goes_by_prefix_not_length() -> None:
    # 422 and 7003 have a fixed length but are not in the predefined-length table.
    fields = [("422", "276"), ("7003", "2701311230"), ("3102", "000125"), ("10", "A")]
    assert element_string(fields) == "422276" + GS + "70032701311230" + GS + "3102000125" + "10A"
    assert biip_fields(element_string(fields)) == fields
    assert [needs_separator(ai) for ai, _ in fields] == [True, True, False, True]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([], "empty_message"),
        ([("01", "0703206980498")], "invalid_length"),
        ([("01", "07032069804989")], "bad_check_digit"),
        ([("414", "1234567890123")], "bad_check_digit"),
        ([("10", "")], "invalid_length"),
        ([("10", "A" * 21)], "invalid_length"),
        ([("10", "LOT 1")], "invalid_characters"),  # space is not in CSET 82
        ([("10", "LOT#1")], "invalid_characters"),
        ([("21", "é")], "invalid_characters"),
        ([("30", "123456789")], "invalid_length"),
        ([("37", "1.5")], "invalid_characters"),
        ([("400", "P" * 31)], "invalid_length"),
        ([("17", "211301")], "invalid_date"),
        ([("17", "210230")], "invalid_date"),
        ([("11", "210132")], "invalid_date"),
        ([("7003", "2101012400")], "invalid_date"),
        ([("7003", "2101000000")], "invalid_date"),
        ([("3106", "123456")], "unknown_ai"),  # 310n has n = 0..5
        ([("310", "123456")], "unknown_ai"),
        ([("1", "2")], "unknown_ai"),
        ([("10", "A"), ("10", "A")], "duplicate_ai"),
    ],
)
def test_invalid_fields_are_refused_with_a_stable_code(
    fields: list[tuple[str, str]], code: str
) -> None:
    assert error_code(fields) == code


def test_human_readable() -> None:
    fields = [("01", "07032069804988"), ("10", "0329")]
    assert human_readable(fields) == "(01)07032069804988(10)0329"


# --- dates and quantities ----------------------------------------------------------


def test_date_yymmdd_and_the_century_window() -> None:
    today = date(2026, 6, 1)
    assert date_yymmdd(date(2027, 5, 31), today=today) == "270531"
    assert date_yymmdd(date(2076, 1, 1), today=today) == "760101"  # today.year + 50
    assert date_yymmdd(date(1977, 1, 1), today=today) == "770101"  # today.year - 49
    for outside in (date(2077, 1, 1), date(1976, 12, 31)):
        with pytest.raises(Gs1EncodeError) as info:
            date_yymmdd(outside, today=today)
        assert info.value.code == "date_out_of_range"


def test_net_weight_uses_fewest_decimals_and_never_floats() -> None:
    assert net_weight_kg(Decimal("1.23456")) == ("3105", "123456")
    assert net_weight_kg(Decimal("12.500")) == ("3101", "000125")
    assert net_weight_kg(Decimal("100")) == ("3100", "000100")
    assert net_weight_kg(Decimal("1E+2")) == ("3100", "000100")
    assert net_weight_kg(Decimal("999999")) == ("3100", "999999")
    for bad in ("1.234567", "1000000", "-1", "NaN", "12345.67"):
        with pytest.raises(Gs1EncodeError) as info:
            net_weight_kg(Decimal(bad))
        assert info.value.code == "invalid_quantity", bad


@given(st.decimals(min_value=0, max_value=9999, places=2, allow_nan=False))
def test_net_weight_round_trips_through_biip(weight: Decimal) -> None:
    ai, value = net_weight_kg(weight)
    (element,) = biip.parse("]C1" + element_string([(ai, value)])).gs1_message.element_strings
    assert element.decimal == weight


def test_variable_count() -> None:
    assert variable_count(Decimal("12")) == ("30", "12")
    assert variable_count(Decimal("12.000")) == ("30", "12")
    assert variable_count(Decimal("99999999")) == ("30", "99999999")
    for bad in ("1.5", "-1", "100000000"):
        with pytest.raises(Gs1EncodeError) as info:
            variable_count(Decimal(bad))
        assert info.value.code == "invalid_quantity", bad


# --- property: whatever we encode, biip reads back field for field -----------------


def _numeric(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=length, max_size=length)


def _with_check(length: int) -> st.SearchStrategy[str]:
    return _numeric(length - 1).map(lambda payload: payload + gs1_check_digit(payload))


_today = date.today()
_dates = st.dates(_today - timedelta(days=365 * 40), _today + timedelta(days=365 * 40))


def _value(ai: str) -> st.SearchStrategy[str]:
    spec = AI_SPECS[ai]
    if spec.check_digit:
        return _with_check(spec.max_length)
    if spec.date_time:
        times = st.tuples(st.integers(0, 23), st.integers(0, 59))
        return st.tuples(_dates, times).map(
            lambda dt: date_yymmdd(dt[0]) + f"{dt[1][0]:02d}{dt[1][1]:02d}"
        )
    if spec.date:
        month_end = _dates.map(lambda d: date_yymmdd(d)[:4] + "00")
        return st.one_of(_dates.map(date_yymmdd), month_end)
    alphabet = "0123456789" if spec.charset == "N" else "".join(sorted(CSET_82))
    return st.text(alphabet=alphabet, min_size=spec.min_length, max_size=spec.max_length)


_fields = st.lists(
    st.sampled_from(sorted(AI_SPECS)).flatmap(lambda ai: _value(ai).map(lambda v: (ai, v))),
    min_size=1,
    max_size=6,
    unique_by=lambda field: field[0],
)


@settings(max_examples=300)
@given(_fields)
@example([("10", "0329"), ("15", "210526")])
@example([("3103", "001250"), ("30", "7"), ("21", "!\"%&'()*+,-./:;<=>?_")])
def test_element_string_round_trips_through_biip(fields: list[tuple[str, str]]) -> None:
    encoded = element_string(fields)
    assert biip_fields(encoded) == fields
    separators = sum(needs_separator(ai) for ai, _ in fields[:-1])
    assert encoded.count(GS) == separators


@given(st.text(max_size=25))
def test_lot_text_is_either_refused_or_read_back_exactly(lot: str) -> None:
    try:
        encoded = element_string([("10", lot), ("21", "S1")])
    except Gs1EncodeError as exc:
        assert exc.code in ("invalid_length", "invalid_characters")
        assert not (1 <= len(lot) <= 20 and set(lot) <= CSET_82)
    else:
        assert biip_fields(encoded) == [("10", lot), ("21", "S1")]
