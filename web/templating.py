"""The Jinja2 environment (autoescaped; gettext through the i18n extension, each
render getting its request's catalog) and the one function that renders a page."""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from tenant.security import csrf_token
from web import i18n, labels
from web.reasons import reason_for, rejection_for
from web.security import Principal, presession, presession_cookie

TEMPLATES_DIR = Path(__file__).parent / "templates"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
}


@pass_context
def _gettext(context: Context, message: str) -> str:
    catalog: gettext.NullTranslations = context["translations"]
    return catalog.gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    catalog: gettext.NullTranslations = context["translations"]
    return catalog.ngettext(singular, plural, n)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    env.globals.update(
        NAV=labels.NAV,
        ROLES=labels.ROLES,
        EVENT_TYPES=labels.EVENT_TYPES,
        STATES=labels.STATES,
        label=labels.label,
        reason_for=reason_for,
        rejection_for=rejection_for,
    )
    return env


ENV = make_environment()


def language_of(request: Request) -> str:
    """A signed-in user's own language (stored on the user, so every browser and
    session of theirs gets it); before sign-in the `lang` cookie, then the browser's."""
    who = getattr(request.state, "portal_principal", None)
    if who is not None:
        return who.language  # type: ignore[no-any-return]
    return i18n.choose(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )


def translate(request: Request, message: str) -> str:
    return i18n.translations(language_of(request)).gettext(message)


def render(
    request: Request,
    name: str,
    who: Principal | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page for `who` (None on the sign-in pages, whose forms then carry a token
    bound to the pre-session cookie, set here when new)."""
    lang = language_of(request)
    new_presession: str | None = None
    if who is not None:
        csrf = who.csrf
        formats = i18n.Formats(lang, who.currency, who.tenant.timezone)
    else:
        token, is_new = presession(request)
        new_presession = token if is_new else None
        csrf = csrf_token(token, request.app.state.settings.api_key_pepper)
        formats = i18n.Formats(lang)
    html = ENV.get_template(name).render(
        translations=i18n.translations(lang),
        lang=lang,
        languages=[(code, i18n.LANGUAGE_NAMES[code]) for code in i18n.LANGUAGES],
        fmt=formats,
        who=who,
        csrf=csrf,
        path=request.url.path,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    if new_presession is not None:
        response.set_cookie(**presession_cookie(new_presession))
    return response
