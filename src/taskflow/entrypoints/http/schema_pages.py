"""The pages under ``/schema``, served from this process alone: no CDN, so they work offline.

Swagger UI's files come from the ``swagger-ui-py`` package, which ships a current Swagger UI
(OpenAPI 3.1 needs 5.x) as plain files; only those files are used, never its Python code.
Litestar's other viewers (ReDoc, RapiDoc, Elements) and its Scalar default load from CDNs,
so they are not offered.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.router import Router
from litestar.static_files import create_static_files_router

SCHEMA_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{SCHEMA_PATH}/assets"


def swagger_ui_files() -> Path:
    # Found without importing the package, whose modules are framework adapters we do not use.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing; reinstall taskflow")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at ``/schema`` (and ``/schema/swagger``), the document as JSON and YAML."""
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        ),
        JsonRenderPlugin(),
        YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
    ]


def assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[swagger_ui_files()], include_in_schema=False
    )
