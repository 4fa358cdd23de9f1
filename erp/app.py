"""The served web application: the HTTP API (cloud_api.api.app.create_app, API only)
with the portal's pages (web.app.mount) on top. The cloud's API knows nothing of the
portal; the portal is added here, where both are known."""

from fastapi import FastAPI
from sqlalchemy import Engine

from cloud_api.api.app import create_app as create_api
from cloud_api.settings import Settings
from web.app import mount


def create_app(
    settings: Settings | None = None, db: Engine | None = None, platform_db: Engine | None = None
) -> FastAPI:
    """The API and the portal in one app; the arguments are create_api's (`db`: the
    tenants' engine, `platform_db`: erp_platform's, one engine on SQLite)."""
    app = create_api(settings, db, platform_db)
    mount(app)
    return app
