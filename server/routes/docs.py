"""FastAPI's Swagger UI at /docs, with its script, style and icon served from the installed
``swagger-ui-bundle-v2`` package rather than a CDN, so that it works on a classroom network
with no internet."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from server.resources import SWAGGER_UI_DIR


def add_docs(app: FastAPI) -> None:
    """Serve /docs and its assets (under /docs/assets) from this server."""
    assets = "/docs/assets"
    oauth2_redirect_url = "/docs/oauth2-redirect"
    openapi_url = app.openapi_url
    assert openapi_url, "/docs shows the OpenAPI schema"
    app.mount(assets, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=oauth2_redirect_url,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
