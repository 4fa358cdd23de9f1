"""The API's path and query parameters, bounded (issue 15, item 7).

Every path or query value the API reads goes through one of these, so that what no
lookup or database can take is a 422 problem+json, never a 500 from deep inside:
a NUL character (PostgreSQL's text refuses U+0000, so a lookup by it failed in the
driver), a text longer than any code, an integer beyond its column (PostgreSQL's
int4 overflowed), a time at the edge of the representable range (its conversion to
UTC overflowed) or spelt loosely (an epoch number), a decimal spelt loosely.
"""

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BeforeValidator

from contract.wire_types import Instant, exact_decimal

# A code or an id in a path: what a Code (contract.Code) or a UUID can be, no NUL.
CODE_RULES: dict[str, Any] = {"min_length": 1, "max_length": 64, "pattern": r"^[^\x00]+$"}
INT4_MAX = 2**31 - 1  # a 32-bit integer column's (a BOM version)


def ascii_digits(value: Any) -> Any:
    """An integer as plain ASCII digits (or a Python int): not " 1", "+1", "1_000" or
    "1.0", which pydantic's lax parsing would read as numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return value
    raise ValueError("an integer is written as plain ASCII digits, e.g. 2")


# The FastAPI marker first, then the validator: so the OpenAPI document states the
# bounds as JSON Schema (minimum, maximum...) and schemathesis generates around them.
PathCode = Annotated[str, Path(**CODE_RULES)]
Version = Annotated[int, Path(ge=1, le=INT4_MAX), BeforeValidator(ascii_digits)]
QueryCode = Annotated[str | None, Query(**CODE_RULES)]
QueryInstant = Annotated[Instant | None, Query()]
QueryQuantity = Annotated[
    Decimal,
    Query(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
    BeforeValidator(exact_decimal),
]
# A fiscal period, YYYY-MM (reporting.finance.valid_period: years 1901..2999).
QueryPeriod = Annotated[
    str | None, Query(pattern=r"^(190[1-9]|19[1-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$")
]
