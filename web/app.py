"""The owner's portal: server-rendered pages served by the API's app."""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from web import (
    dashboard,
    devices,
    exception_queue,
    finance,
    inventory,
    label_printing,
    members,
    mfa_pages,
    production,
    signin,
    subscription,
)
from web.security import LoginRequired, MfaSetupRequired, PageError, login_url
from web.templating import render

STATIC_DIR = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """Add the portal's pages and static files to the app."""
    app.state.books_check = dashboard.BooksCheckCache()
    for module in (
        signin,
        dashboard,
        inventory,
        production,
        finance,
        exception_queue,
        devices,
        label_printing,
        subscription,
        members,
    ):
        app.include_router(module.router())
    app.include_router(mfa_pages.router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(MfaSetupRequired)
    async def _mfa_first(_: Request, exc: MfaSetupRequired) -> Response:
        return RedirectResponse("/mfa", status_code=303)

    @app.exception_handler(LoginRequired)
    async def _login_required(_: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        who = getattr(request.state, "portal_principal", None)
        return render(
            request, "error.html", who, status=exc.status, title=exc.title, detail=exc.detail
        )
