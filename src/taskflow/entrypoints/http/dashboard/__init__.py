"""The web dashboard at ``/dashboard``: pages rendered here from Jinja2 templates, a small
script of our own for live refresh, charts drawn as inline SVG; every file is in the package
(decision 27). Faults are answered as HTML pages with the status the API would give. Every
answer carries a content security policy allowing the package's own files only, and every
action is guarded against other sites (csrf.py, decision 31)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Router
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from taskflow.domain.errors import TaskflowError
from taskflow.entrypoints.http.dashboard.actions import DashboardActions
from taskflow.entrypoints.http.dashboard.pages import DashboardPages
from taskflow.entrypoints.http.dashboard.sign_in import DashboardSignIn
from taskflow.entrypoints.http.problems import status_of
from taskflow.entrypoints.http.security_headers import DASHBOARD_HEADERS, NO_STORE, layer_headers

log = logging.getLogger("taskflow.api")

HERE: Final = Path(__file__).parent
STATIC_PATH: Final = "/dashboard/static"


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    # Autoescape on every template: payloads, results, errors and metadata are the users' own
    # text, and each is shown escaped (tests/unit/test_dashboard.py plants a <script>).
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update({"json": _json, "when": _when, "age": _age})
    environment.globals["static"] = STATIC_PATH
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def _fault_page(status: int, detail: str) -> Template:
    return Template(
        "error.html",
        context={"nav": None, "notice": None, "status": status, "detail": detail},
        status_code=status,
        # The routers' layers are not applied to a handler's fault.
        headers={**DASHBOARD_HEADERS, **NO_STORE},
    )


def on_domain_error(request: Request[Any, Any, Any], exc: TaskflowError) -> Template:
    status = status_of(exc)
    if status == 500:
        log.error("unexpected domain error", exc_info=exc)
        return _fault_page(500, "internal error")
    return _fault_page(status, exc.message)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    if exc.status_code >= 500:
        log.error("dashboard page failed", exc_info=exc, extra={"path": request.url.path})
    return _fault_page(exc.status_code, str(exc.detail))


def dashboard_router() -> Router:
    """The pages, the actions and their files, on the app's services (``service``,
    ``schedules``, ``fleet``)."""
    pages = Router(
        path="/",
        route_handlers=[DashboardPages, DashboardActions, DashboardSignIn],
        response_headers=layer_headers(NO_STORE),
        include_in_schema=False,
    )
    files = create_static_files_router(  # cached by the browser, revalidated by ETag
        path=STATIC_PATH, directories=[HERE / "static"], include_in_schema=False
    )
    return Router(
        path="/",
        route_handlers=[pages, files],
        exception_handlers={TaskflowError: on_domain_error, HTTPException: on_http_error},
        response_headers=layer_headers(DASHBOARD_HEADERS),
        include_in_schema=False,
    )
