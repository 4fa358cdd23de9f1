"""The owner's portal: server-rendered pages served by the API's app."""

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add the portal's pages and static files to the app."""
