"""Languages and formats: the gettext catalogs (web/locale/<lang>/LC_MESSAGES/
messages.po, compiled in memory once per process: no build step), which language a
request gets, and amounts, quantities and times in that language's conventions."""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh_CN")  # what the portal offers, in the switcher's order
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"
LANGUAGE_NAMES = {"en": "English", "zh_CN": "中文"}


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of `lang` (one of LANGUAGES), read once per process."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def normalise(tag: str | None) -> str | None:
    """One of LANGUAGES for a cookie value or an Accept-Language tag, else None."""
    if not tag:
        return None
    tag = tag.strip().replace("-", "_").lower()
    if tag.startswith("zh"):
        return "zh_CN"  # Simplified Chinese for every zh variant we are sent
    if tag.startswith("en"):
        return "en"
    return None


def tag_of(lang: str) -> str:
    """How a language is stored on the user (app_user.locale): a BCP 47 tag."""
    return lang.replace("_", "-")


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The `lang` cookie if it names a language we have; else the first one the
    browser accepts (by q-value); else English."""
    chosen = normalise(cookie)
    if chosen:
        return chosen
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalise(tag)
        if lang and q > 0:
            weighted.append((-q, index, lang))
    return min(weighted)[2] if weighted else DEFAULT_LANGUAGE


class Formats:
    """Formatting for one request: its language, the tenant's currency and timezone."""

    def __init__(self, lang: str, currency: str = "CNY", timezone: str = "UTC") -> None:
        self.lang = lang
        self.locale = Locale.parse(lang)
        self.currency = currency
        self.zone = ZoneInfo(timezone)

    def money(self, amount: Decimal | int | None) -> str:
        """An amount in the tenant's currency, e.g. ¥1,234.50 or CN¥1,234.50."""
        value = Decimal(amount or 0)
        return format_currency(value, self.currency, locale=self.locale)

    def money_in(self, amount: Decimal | int | None, currency: str) -> str:
        """An amount in another currency (what the platform bills, say)."""
        return format_currency(Decimal(amount or 0), currency, locale=self.locale)

    def qty(self, quantity: Decimal | int | None) -> str:
        """A quantity with its significant decimals only (up to six)."""
        value = Decimal(quantity or 0).normalize()
        places = max(0, -int(value.as_tuple().exponent))  # type: ignore[operator]
        pattern = "#,##0." + "#" * min(places, 6) if places else "#,##0"
        return format_decimal(value, format=pattern, locale=self.locale)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def day(self, moment: datetime) -> str:
        """The date of a moment in the tenant's timezone, e.g. Mar 16, 2026."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
        return format_date(aware.astimezone(self.zone).date(), "medium", locale=self.locale)

    def when(self, moment: datetime | None) -> str:
        """A moment in the tenant's timezone, medium format; '' for none."""
        if moment is None:
            return ""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
        return format_datetime(aware, "medium", tzinfo=self.zone, locale=self.locale)
