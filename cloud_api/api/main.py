"""ASGI entry point for uvicorn (`erp serve`)."""

from cloud_api.api.app import create_app

app = create_app()
