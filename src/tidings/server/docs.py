"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), on assets vendored in ``static/`` and served by
tidings itself: the pages work without internet access and load nothing from elsewhere (a
Content-Security-Policy tells the browser so; ReDoc's footer logo, the one outside reference in
its bundle, is blocked and hides itself)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
STATIC_URL = "/static"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # each page starts its bundle with an inline script
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search runs in a worker made from a blob
        "connect-src 'self'",
    ]
)


def install(app: FastAPI) -> None:
    """Serve ``static/`` and the two documentation pages (the app is made with docs_url=None)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    title = f"{app.title} API"
    favicon = f"{STATIC_URL}/favicon-32x32.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )
        page.headers["content-security-policy"] = CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = CSP
        return page
