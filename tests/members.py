"""Looking a member up: POST /api/v1/users never answers with a person's id (it would
tell an address with an account from one without, issue 15), so a test that needs the
id of a member it added reads it from the member list, as a client does."""

from __future__ import annotations

from typing import Any


def member_id(members: list[dict[str, Any]], email: str) -> str:
    """The id of the member with `email` in a GET /api/v1/users answer."""
    (found,) = [m["id"] for m in members if m["email"] == email.strip().lower()]
    return str(found)
