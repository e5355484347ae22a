"""GET /api/docs: the API's interactive docs (Swagger UI over /api/openapi.json), served whole from this server.

FastAPI's own docs page loads Swagger UI from a CDN, which the Content-Security-Policy ('self' only) blocks and an
offline install cannot reach; the `fastapi-offline` package ships the Swagger UI files, so they are served from
/api/docs/assets/ here instead. Public, like the schema: they describe the API, not anyone's data.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
ASSETS_URL = DOCS_URL + "/assets"
_ASSETS = files("fastapi_offline") / "static"
_SHIPPED = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}


async def docs_page(request: Request) -> Response:
    """Swagger UI over the schema; "Authorize" takes the token from POST /api/session."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title="Maestro API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": False},
    )


async def docs_asset(request: Request) -> Response:
    """One of the Swagger UI files the page loads (only those: this is no general file server)."""
    name = request.path_params["name"]
    if name not in _SHIPPED:
        return JSONResponse({"error": "No such file."}, status_code=404)
    return FileResponse(str(_ASSETS / name), headers={"Cache-Control": "public, max-age=86400"})


def docs_routes() -> list[Route]:
    return [
        Route(DOCS_URL, docs_page, methods=["GET"], name="api-docs"),
        Route(ASSETS_URL + "/{name:str}", docs_asset, methods=["GET"], name="api-docs-asset"),
    ]
