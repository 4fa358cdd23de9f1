"""Run the Alembic migrations programmatically (used by `erp db upgrade` and tests)."""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from cloud_api.db.engine import normalize_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def drop_columns(op: Any, table: str, *columns: str) -> None:
    """For a migration's downgrade: drop columns in place. Alembic's SQLite batch mode
    rebuilds the table, and dropping the old one trips the foreign keys that point at
    it; SQLite (3.35+) drops a plain column itself."""
    for column in columns:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
