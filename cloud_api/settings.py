"""Configuration from the environment (and an optional .env file)."""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # the tenants' connections: on PostgreSQL the erp_app role (row-level security)
    database_url: str = f"sqlite:///{Path('var') / 'erp.sqlite3'}"
    # credential lookups, sign-up and cross-tenant jobs: erp_platform (default: the above)
    platform_database_url: str | None = None
    # migrations: the owner of the schema, erp_owner (default: database_url)
    owner_database_url: str | None = None
    api_key_pepper: str = "dev-pepper-change-me"
    # the API rate buckets and the login throttle, shared by every worker; without it
    # each process keeps its own (fine for one process: the demo)
    redis_url: str | None = None
    redis_prefix: str = "erp"
    # outgoing mail (cloud_api/mail.py): file:DIR writes .eml files, smtp://host:port,
    # smtp+starttls://user:pass@host:587 or smtps://... hand them to a mail server
    mail_url: str = f"file:{Path('var') / 'mail'}"
    mail_from: str = "Shop-floor ERP <no-reply@localhost>"
    # where the portal is reached from outside: the links in mails (never the request's
    # own Host header, which a sender could choose)
    public_url: str = "http://127.0.0.1:8000"
    max_batch_events: int = 1000
    # the event time window (domain/clock.py EventWindow): an event dated further back
    # or ahead of the server's clock is rejected on its own, occurred_at_out_of_range
    # (GET /api/v1/settings shows it to the tenant)
    event_max_past_days: int = 3660
    event_max_future_hours: float = 48
    max_body_bytes: int = 8 * 1024 * 1024
    # a valuation pool is snapshotted every this many records (domain/engine.py): a late
    # event replays a pool from the newest snapshot before it, not from its beginning,
    # so this bounds what it rebuilds per pool (docs/benchmarks.md, "Late events")
    valuation_snapshot_every: int = 100


@lru_cache
def get_settings() -> Settings:
    return Settings()
