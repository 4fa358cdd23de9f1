"""Paging of the API's lists: one convention for every list route.

A list takes `limit` (1..its maximum, 100 by default) and `offset` (0 or more); a value
outside is 422 invalid_request, never silently clamped. The answer stays the bare JSON
array it always was, so no client breaks, and the headers say the rest:
`X-Total-Count` (every row there is) and, while rows remain, `Link: <…>; rel="next"`
(this request's URL with the next offset). A list never stops silently at a cap.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1
EXPOSED = "X-Total-Count, Link"

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page:
    """Which slice of a list is asked for."""

    limit: int
    offset: int

    def slice(self, rows: Sequence[Row]) -> tuple[list[Row], int]:
        """This page of a list held whole in memory (a short one: devices, tokens), and
        how many there are."""
        return list(rows[self.offset : self.offset + self.limit]), len(rows)


def page_params(default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> Callable[..., Page]:
    """A dependency reading `limit` and `offset`, bounded (422 outside the bounds)."""

    def read(
        limit: Annotated[int, Query(ge=1, le=maximum, description="rows per page")] = default,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
    ) -> Page:
        return Page(limit, offset)

    return read


PageDep = Annotated[Page, Depends(page_params())]


def paged(
    request: Request, response: Response, page: Page, rows: list[Any], total: int
) -> list[Any]:
    """`rows` as the answer, with X-Total-Count and, when more rows follow, the Link to
    the next page."""
    response.headers["X-Total-Count"] = str(total)
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
    following = page.offset + len(rows)
    if rows and following < total:
        url = request.url.include_query_params(limit=page.limit, offset=following)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return rows
