"""Helpers for the portal's tests: a browser-like TestClient (HTTPS, so the `__Host-`
cookies are kept, and the CSRF token scraped from the page's forms as a browser would
submit it), and the message ids the portal's templates and modules use."""

from __future__ import annotations

import re
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from babel.messages.extract import extract_from_dir
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_api.settings import get_settings
from erp.app import create_app
from tests.roles import app_engines

PASSWORD = "tiger-lily walks 42 oak benches"
WEB_DIR = Path(__file__).parent.parent / "web"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
API_KEY = re.compile(r'id="api-key">([^<]+)<')
SLUG = re.compile(r'id="slug">([^<]+)<')
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "PageError": (2,), "translate": (2,)}
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def csrf_of(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "the page has no form with a CSRF token"
    return unescape(found.group(1))


class Portal:
    """A portal user's browser on https://testserver (the session cookie is Secure)."""

    def __init__(self, db: Engine, client: TestClient | None = None) -> None:
        self.client = client or TestClient(
            create_app(get_settings(), *app_engines(db)),
            base_url="https://testserver",
            follow_redirects=False,
        )
        self.api_key = ""
        self.slug = ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def csrf(self, page: str = "/") -> str:
        return csrf_of(self.get(page).text)

    def post(self, path: str, data: dict[str, str] | None = None, page: str = "/") -> Any:
        """A form post with the CSRF token of `page`'s forms."""
        body = {"csrf_token": self.csrf(page), **(data or {})}
        return self.client.post(path, data=body)

    def sign_up(self, address: str | None = None, company: str = "Oak & Pine") -> httpx.Response:
        form = {
            "company": company,
            "name": "Owner",
            "email": address or email("owner"),
            "password": PASSWORD,
        }
        response = self.post("/signup", form, page="/signup")
        assert response.status_code == 200, response.text
        found = API_KEY.search(response.text)
        assert found, "the welcome page shows the API key"
        self.api_key = found.group(1)
        slug = SLUG.search(response.text)
        assert slug
        self.slug = slug.group(1)
        return response

    def log_in(self, address: str, password: str = PASSWORD, next_path: str = "/") -> Any:
        form = {"email": address, "password": password, "next": next_path}
        return self.post("/login", form, page="/login")

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The JSON API with the tenant's API key (no cookie: integrations)."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)

    def add_member(self, role: str) -> str:
        """A member with `role`, added by this owner through the JSON API; the email."""
        address = email(role)
        body = {"email": address, "name": role.title(), "role": role, "password": PASSWORD}
        response = self.api("POST", "/users", json=body)
        assert response.status_code == 201, response.text
        return address


def message_ids() -> set[str | tuple[str, str]]:
    """Every message id the portal's templates and modules mark for translation; a
    plural one as (singular, plural)."""
    found: set[str | tuple[str, str]] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(WEB_DIR), METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found
