"""Exact decimal columns on every database.

PostgreSQL stores NUMERIC natively. SQLite has no decimal type (SQLAlchemy would go
through float), so there the value is stored as a scaled 64-bit integer: quantities
and unit costs with 6 places, amounts with 2. SUM() over such a column stays exact on
both, which the books-check relies on.
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class ScaledDecimal(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def __repr__(self) -> str:  # how Alembic writes the type into a migration
        return f"ScaledDecimal({self.scale})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(24, self.scale, asdecimal=True))
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(value)
        scaled = exact.quantize(self._quantum)
        if scaled != exact:
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        if dialect.name == "postgresql":
            return scaled
        return int(scaled.scaleb(self.scale))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return Decimal(value).quantize(self._quantum)
        return Decimal(int(value)).scaleb(-self.scale).quantize(self._quantum)


def Qty() -> ScaledDecimal:
    return ScaledDecimal(6)


def Money() -> ScaledDecimal:
    return ScaledDecimal(2)
