"""The API's routes, one module per context, each with a module-level `router`.

Every route declares who may call it (`dependencies=[Requires(...)]`,
cloud_api/api/permissions.py) and answers with a declared response model."""

from fastapi import APIRouter

from cloud_api.api.routes import (
    auth,
    devices,
    edge,
    exceptions,
    export,
    ledger,
    masterdata,
    members,
    production,
    reports,
    subscription,
    tokens,
)

# in this order: a path that another could take (none today) is matched by the first
ROUTERS: tuple[APIRouter, ...] = (
    edge.router,
    exceptions.router,
    masterdata.router,
    production.router,
    ledger.router,
    export.router,
    reports.router,
    devices.router,
    tokens.router,
    subscription.router,
    auth.router,
    members.router,
)
