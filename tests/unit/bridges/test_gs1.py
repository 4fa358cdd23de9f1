"""GS1 parsing over biip: the EDGE.md examples, routing by symbology, errors, properties.

The check digits in the property tests are computed here, independently of biip, so
the tests check biip's validation as well as the wrapper.
"""

import calendar
import string
from datetime import date
from decimal import Decimal
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridges.gs1.parse import Gs1Error, ScanData, looks_like_gtin, parse_scan
from firmware_bridges.gs1.reading import read_gs1
from firmware_bridges.scanner.aim import SYMBOLOGY_NAMES, is_gs1, is_product_code, may_carry_gs1

GS = "\x1d"


def mod10(payload: str) -> str:
    """GS1 check digit: weights 3,1,3... from the right of the payload."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return str((10 - total % 10) % 10)


def with_check(payload: str) -> str:
    return payload + mod10(payload)


def wrong_check(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def yymmdd(day: date, day_zero: bool = False) -> str:
    return f"{day:%y%m}" + ("00" if day_zero else f"{day:%d}")


# --- EDGE.md examples -------------------------------------------------------------


def test_edge_example_fixed_fields_without_separators() -> None:
    scan = parse_scan("010703206980498815210526100329")
    assert scan.kind == "gs1"
    assert scan.elements == (("01", "07032069804988"), ("15", "210526"), ("10", "0329"))
    assert (scan.gtin, scan.best_before, scan.lot) == ("07032069804988", date(2021, 5, 26), "0329")
    assert scan.expiry is None
    assert scan.hri == "(01)07032069804988(15)210526(10)0329"


def test_edge_example_lot_ended_by_gs() -> None:
    scan = parse_scan(f"0107032069804988100329{GS}15210526")
    assert scan.elements == (("01", "07032069804988"), ("10", "0329"), ("15", "210526"))
    assert scan.lot == "0329"  # not "032915210526": the GS ended the lot
    assert scan.best_before == date(2021, 5, 26)


def test_edge_example_gs1_128_with_aim_identifier() -> None:
    scan = parse_scan("]C1010590123412345715210526")
    assert (scan.kind, scan.symbology) == ("gs1", "]C1")
    assert scan.elements == (("01", "05901234123457"), ("15", "210526"))
    assert scan.value == "010590123412345715210526"


def test_edge_example_ean_13() -> None:
    scan = parse_scan("]E05901234123457")
    assert (scan.kind, scan.symbology, scan.value) == ("gtin", "]E0", "5901234123457")
    assert scan.gtin == "05901234123457"  # always GTIN-14: one key per product
    assert scan.elements == (("01", "05901234123457"),)


def test_edge_example_sscc() -> None:
    scan = parse_scan("00373400306809981733")
    assert (scan.kind, scan.sscc, scan.gtin) == ("gs1", "373400306809981733", None)


def test_edge_example_sscc_with_wrong_check_digit_is_an_error() -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_scan("00376130321109103421")
    assert caught.value.code == "gs1_check_digit"
    assert "376130321109103421" in caught.value.message


def test_edge_example_net_weight_keeps_its_decimals() -> None:
    scan = parse_scan("3105123456")
    assert scan.net_weight_kg == Decimal("1.23456")
    assert isinstance(scan.net_weight_kg, Decimal)
    assert scan.net_weight_kg.as_tuple().exponent == -5
    weight = parse_scan("]C13102001250").net_weight_kg
    assert weight is not None and weight.as_tuple() == Decimal("12.50").as_tuple()


def test_edge_example_expiry_day_zero_is_end_of_month() -> None:
    assert parse_scan("17211200").expiry == date(2021, 12, 31)
    assert parse_scan("]C117240200").expiry == date(2024, 2, 29)
    assert parse_scan("]C117230200").expiry == date(2023, 2, 28)


# --- more fields --------------------------------------------------------------------


def test_receipt_label_fields() -> None:
    gln = with_check("539900000000")
    po = "PO-2024/77"
    text = f"]C1010703206980498811240115{GS}3700000012{GS}400{po}{GS}410{gln}21SN-9{GS}422156"
    scan = parse_scan(text)
    assert scan.production_date == date(2024, 1, 15)
    assert scan.quantity == Decimal(12)
    assert (scan.purchase_order, scan.ship_to_gln) == (po, gln)
    assert (scan.serial, scan.origin_country) == ("SN-9", "156")
    assert [ai for ai, _ in scan.elements] == ["01", "11", "37", "400", "410", "21", "422"]


def test_variable_count_and_internal_ai() -> None:
    scan = parse_scan(f"]C10207032069804988300025{GS}90BIN-7")
    assert (scan.content_gtin, scan.gtin) == ("07032069804988", None)
    assert scan.quantity == Decimal(25)
    assert scan.first("90") == "BIN-7"
    assert scan.first("91") is None


def test_leading_fnc1_as_gs_and_trailing_gs_are_ignored() -> None:
    scan = parse_scan(f"]C1{GS}0107032069804988{GS}")
    assert scan.elements == (("01", "07032069804988"),)


def test_bytes_input_and_symbology_argument() -> None:
    for symbology in ("]d2", "d2"):
        scan = parse_scan(f"0107032069804988100329{GS}17211200".encode(), symbology=symbology)
        assert (scan.kind, scan.symbology, scan.lot) == ("gs1", "]d2", "0329")
        assert scan.expiry == date(2021, 12, 31)


def test_upc_a_is_padded_to_gtin_14() -> None:
    assert parse_scan("036000291452").gtin == "00036000291452"
    assert parse_scan("]E00036000291452").gtin == "00036000291452"


def test_itf_14() -> None:
    gtin = with_check("1540141288931")
    assert parse_scan(f"]I1{gtin}").gtin == gtin
    assert parse_scan("]I112345").kind == "plain"


def test_hri_text_typed_by_hand() -> None:
    scan = parse_scan("(01)07032069804988(17)211200(10)0329")
    assert (scan.gtin, scan.expiry, scan.lot) == ("07032069804988", date(2021, 12, 31), "0329")


# --- Digital Link -------------------------------------------------------------------

DL = "https://id.gs1.org/01/07032069804988/10/0329?17=211200"


@pytest.mark.parametrize("prefix", ["", "]Q1", "]Q3", "]d2", "]d1"])
def test_digital_link(prefix: str) -> None:
    scan = parse_scan(prefix + DL)
    assert (scan.kind, scan.value) == ("digital_link", DL)
    assert (scan.gtin, scan.lot, scan.expiry) == ("07032069804988", "0329", date(2021, 12, 31))
    assert scan.symbology == (prefix or None)


def test_other_urls_in_plain_qr_codes_stay_plain() -> None:
    scan = parse_scan("]Q1https://example.com/manual.pdf")
    assert (scan.kind, scan.value, scan.gtin) == ("plain", "https://example.com/manual.pdf", None)


def test_gs1_qr_with_a_url_that_is_not_digital_link_is_an_error() -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_scan("]Q3https://example.com/manual.pdf")
    assert caught.value.code == "gs1_malformed"


def test_digital_link_with_wrong_check_digit_or_bad_date() -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_scan("https://id.gs1.org/01/07032069804987/10/0329")
    assert caught.value.code == "gs1_check_digit"
    with pytest.raises(Gs1Error) as caught:
        parse_scan("]Q1https://id.gs1.org/01/07032069804988?17=210230")
    assert caught.value.code == "gs1_bad_date"


# --- plain codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("WO-0001", "WO-0001"),
        ("]C0WO-0001", "WO-0001"),
        ("]A0BIN-A-07", "BIN-A-07"),
        ("]C00107032069804988", "0107032069804988"),  # Code 128 without FNC1 is not GS1
        ("1000", "1000"),  # would be lot "00" if read as GS1
        ("21-5501", "21-5501"),
    ],
)
def test_plain_codes_keep_their_value(text: str, value: str) -> None:
    scan = parse_scan(text)
    assert (scan.kind, scan.value) == ("plain", value)
    assert scan == ScanData(kind="plain", value=value, symbology=scan.symbology)


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("]E05901234123458", "gs1_check_digit"),
        ("5901234123458", "gs1_check_digit"),
        ("0107032069804987", "gs1_check_digit"),
        (f"]C1410{wrong_check(with_check('539900000000'))}", "gs1_check_digit"),
        ("]C117210230", "gs1_bad_date"),
        ("]C117211300", "gs1_bad_date"),
        ("17211300", "gs1_bad_date"),
        # GTIN-13/14-shaped with a wrong check digit; before, AI (12)'s date complaint
        # won although the digits are no fixed-length element string (issue 15)
        ("1234567890123", "gs1_check_digit"),
        ("12345678901234", "gs1_check_digit"),
        ("96385075", "gs1_check_digit"),  # the EAN-8, mistyped
        ("]C10107032069", "gs1_malformed"),
        ("]C1WO-0001", "gs1_malformed"),
        (f"010703206980498810A{GS}10B", "gs1_malformed"),
        (f"WO{GS}0001", "gs1_malformed"),
        ("]E0ABC", "gs1_malformed"),
        ("", "gs1_malformed"),
        ("]C1", "gs1_malformed"),
    ],
)
def test_errors_have_stable_codes(text: str, code: str) -> None:
    with pytest.raises(Gs1Error) as caught:
        parse_scan(text)
    assert caught.value.code == code
    assert caught.value.message


# --- properties ---------------------------------------------------------------------

LOT_CHARS = string.ascii_letters + string.digits + "-./"
lots = st.text(LOT_CHARS, min_size=1, max_size=20)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2070, 12, 31))
gtin_14s = st.from_regex(r"[0-9]{13}", fullmatch=True).map(with_check)


def end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


@st.composite
def labels(draw: st.DrawFn) -> tuple[list[tuple[str, str, bool]], dict[str, object]]:
    """Random elements as (ai, value, needs_separator) plus the fields they should give."""
    gtin = draw(gtin_14s)
    lot = draw(lots)
    expiry = draw(days)
    day_zero = draw(st.booleans())
    elements = [("01", gtin, False), ("10", lot, True), ("17", yymmdd(expiry, day_zero), False)]
    expected: dict[str, object] = {
        "gtin": gtin,
        "lot": lot,
        "expiry": end_of_month(expiry) if day_zero else expiry,
    }
    if draw(st.booleans()):
        made = draw(days)
        elements.append(("11", yymmdd(made), False))
        expected["production_date"] = made
    if draw(st.booleans()):
        serial = draw(lots)
        elements.append(("21", serial, True))
        expected["serial"] = serial
    if draw(st.booleans()):
        decimals = draw(st.integers(0, 5))
        digits = draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
        elements.append((f"310{decimals}", digits, False))
        expected["net_weight_kg"] = Decimal(int(digits)).scaleb(-decimals)
    return elements, expected


def element_string(elements: list[tuple[str, str, bool]], extra_gs: list[bool]) -> str:
    """Join as a scanner sends them: GS after a variable field unless it is last, and
    (allowed, optional) after a fixed one."""
    parts = []
    for index, (ai, value, needs_separator) in enumerate(elements):
        last = index == len(elements) - 1
        parts.append(ai + value + (GS if not last and (needs_separator or extra_gs[index]) else ""))
    return "".join(parts)


@given(labels(), st.data())
def test_property_element_strings_round_trip(label, data) -> None:
    elements, expected = label
    elements = data.draw(st.permutations(elements))
    extra_gs = data.draw(st.lists(st.booleans(), min_size=len(elements), max_size=len(elements)))
    symbology = data.draw(st.sampled_from(["]C1", "]d2", "]e0", "]Q3"]))
    in_text = data.draw(st.booleans())
    text = element_string(elements, extra_gs)
    scan = parse_scan(symbology + text) if in_text else parse_scan(text, symbology=symbology)
    assert scan.kind == "gs1"
    assert scan.elements == tuple((ai, value) for ai, value, _ in elements)
    for name, value in expected.items():
        assert getattr(scan, name) == value, name


@given(labels(), st.lists(st.booleans(), min_size=6, max_size=6))
def test_property_unidentified_element_strings_starting_with_gtin(label, extra_gs) -> None:
    # Without an identifier the text must look like GS1: here (01) leads, as GS1 advises.
    elements, expected = label
    scan = parse_scan(element_string(elements, extra_gs))
    assert (scan.kind, scan.symbology) == ("gs1", None)
    for name, value in expected.items():
        assert getattr(scan, name) == value, name


@given(gtin_14s, lots, days)
def test_property_digital_link_round_trip(gtin: str, lot: str, expiry: date) -> None:
    uri = f"https://id.gs1.org/01/{gtin}/10/{quote(lot, safe='')}?17={yymmdd(expiry)}"
    scan = parse_scan("]Q1" + uri)
    assert (scan.kind, scan.gtin, scan.lot, scan.expiry) == ("digital_link", gtin, lot, expiry)


@given(gtin_14s, st.sampled_from(["{g}", "]E0{g13}", "01{g}", "]C101{g}", "]I1{g}"]))
def test_property_wrong_check_digit_is_never_a_key(gtin: str, form: str) -> None:
    gtin = "0" + gtin[1:-1] + mod10("0" + gtin[1:-1])  # GTIN-13 inside a GTIN-14
    bad = wrong_check(gtin)
    assert parse_scan(form.format(g=gtin, g13=gtin[1:])).gtin == gtin
    with pytest.raises(Gs1Error) as caught:
        parse_scan(form.format(g=bad, g13=bad[1:]))
    assert caught.value.code == "gs1_check_digit"


# --- the workstation's reading (reading.py): refusals are never plain text -----------


@pytest.mark.parametrize(
    ("data", "symbology", "kind"),
    [
        ("96385074", None, "gtin"),
        ("WO-0001", None, None),
        ("1000", None, None),
        ("0123", None, None),  # digits the parser rejects as GS1: a keyed number
        (f"WO{GS}0001", None, None),  # malformed without identifier: plain, as before
        ("2.5", None, None),
        ("96385075", "]C0", None),  # Code 128 without FNC1 is not GS1
        ("0105901234123458", "]C0", None),
        ("5901234123457", "]E0", "gtin"),
        ("05901234123457", "]I1", "gtin"),  # ITF-14
        ("12345", "]I1", None),
        ("https://example.com/x", "]Q1", None),
        ("https://id.gs1.org/01/05901234123458", "]Q1", None),  # plain QR: plain
        ("https://id.gs1.org/01/05901234123457", "]Q1", "digital_link"),
    ],
)
def test_read_gs1_content_or_plain(data: str, symbology: str | None, kind: str | None) -> None:
    scan = read_gs1(data.encode("latin-1"), symbology)
    assert (scan.kind if scan else None) == kind


@pytest.mark.parametrize(
    ("data", "symbology", "code"),
    [
        # without identifier: was plain text (edge_agent/devices.py), became a quantity
        ("96385075", None, "gs1_check_digit"),
        ("5901234123458", None, "gs1_check_digit"),
        ("1234567890123", None, "gs1_check_digit"),
        ("0105901234123458", None, "gs1_check_digit"),  # element string, bad key
        ("00376130321109103421", None, "gs1_check_digit"),  # SSCC
        ("17211300", None, "gs1_bad_date"),  # GTIN-shaped: never plain
        ("5901234123458", "]E0", "gs1_check_digit"),
        ("0105901234123458", "]C1", "gs1_check_digit"),
        ("WO-0001", "]C1", "gs1_malformed"),
    ],
)
def test_read_gs1_refusals_keep_their_code(data: str, symbology: str | None, code: str) -> None:
    with pytest.raises(Gs1Error) as caught:
        read_gs1(data, symbology)
    assert caught.value.code == code


@given(
    st.sampled_from([8, 12, 13, 14]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    )
)
def test_property_gtin_shaped_scans_without_identifier_are_never_plain(digits: str) -> None:
    assert looks_like_gtin(digits)
    try:
        scan = read_gs1(digits, None)
    except Gs1Error as error:
        assert error.code in ("gs1_check_digit", "gs1_bad_date", "gs1_malformed")
        assert mod10(digits[:-1]) != digits[-1] or error.code != "gs1_check_digit"
    else:
        assert scan is not None and scan.kind in ("gtin", "gs1")
        assert scan.gtin is None or scan.gtin == digits.zfill(14)


@given(gtin_14s, st.sampled_from([8, 12, 13, 14]))
def test_property_wrong_check_digit_without_identifier_is_gs1_check_digit(
    gtin: str, length: int
) -> None:
    bad = wrong_check(gtin[-length:-1] + mod10(gtin[-length:-1]))
    with pytest.raises(Gs1Error) as caught:
        read_gs1(bad, None)
    # gs1_bad_date only for digits that are fixed-length element strings but for a
    # date ("17211300"); never plain text, never a GTIN
    assert caught.value.code in ("gs1_check_digit", "gs1_bad_date")


def test_product_symbologies() -> None:
    product = {s for s in SYMBOLOGY_NAMES if is_product_code(s)}
    assert product == {"]C1", "]E0", "]E3", "]E4", "]e0", "]d2", "]Q3", "]J1"}
    assert all(is_product_code(s) for s in SYMBOLOGY_NAMES if is_gs1(s))
    assert not is_product_code(None) and may_carry_gs1(None)
    assert may_carry_gs1("]Q1") and may_carry_gs1("]I1") and not may_carry_gs1("]C0")
