"""The dashboard's routes on the API port: pages (``templates/``, filled in by ``static/app.js``
from the JSON API), the JSON API itself (``/api/v1/...``), the static files and plotly.js from
the installed ``plotly`` package, and the login page when read tokens are configured."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import duckdb
import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import RequestError, Unauthenticated, Unavailable
from dashboard.access import ANYONE, COOKIE, Access, Viewer
from dashboard.agent import NotFound, agent_view, implicit_view
from dashboard.costview import cost_view, leaks_view
from dashboard.operations import alerts_view, evals_view, operations_view
from dashboard.overview import agents_view, overview_view
from dashboard.reader import Reader
from dashboard.trace import TraceNotFound, trace_view
from dashboard.window import RANGES, BadRequest, Window, window_of
from feedback.implicit import ImplicitConfig
from spend.budgets import Budget, budget_states, state_dict
from spend.forecast import available as forecast_available

log = logging.getLogger("agentwatch.dashboard")

PAGES = {
    "overview": ("/", "Overview"),
    "agents": ("/agents", "Agents"),
    "operations": ("/operations", "Operations"),
    "cost": ("/cost", "Cost"),
    "evals": ("/evals", "Evals"),
    "alerts": ("/alerts", "Alerts"),
}
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

Handler = Callable[[Request], Awaitable[Response]]


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=_JSON_OPTIONS)


def json_response(doc: Any, status: int = 200) -> Response:
    return json_bytes(dumps(doc), status)


def json_bytes(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _refused(error: RequestError) -> Response:
    """A refused request, answered with the HTTP status of ``error``'s class (``core.errors``)."""
    return _error(error.http_status, str(error))


def _query_failed(exc: duckdb.Error) -> Response:
    """A query that could not finish (out of its memory limit, a file gone mid-read): said in
    one line, logged, and the server goes on."""
    log.warning("dashboard query failed: %s", exc)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _refused(Unavailable(f"the query could not finish ({first}); try a shorter range"))


class Dashboard:
    def __init__(
        self,
        reader: Reader,
        access: Access,
        open_note: str | None = None,
        budgets: dict[str, Budget] | None = None,
        implicit: ImplicitConfig | None = None,
    ) -> None:
        self.budgets = budgets or {}
        """The config's budgets, for ``/api/v1/budgets``."""
        self.implicit = implicit or ImplicitConfig()
        """How implicit feedback is read (the config's ``feedback:``)."""
        self.reader = reader
        self.access = access
        self.open_note = open_note
        """Shown on every page when no read token is needed (who can reach the port)."""
        self.templates = Environment(
            loader=PackageLoader("dashboard", "templates"), autoescape=select_autoescape(default=True)
        )

    # -- who is asking ----------------------------------------------------------------------
    def _viewer(self, request: Request) -> Viewer | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        return self.access.viewer(token)

    def _window(self, request: Request, viewer: Viewer) -> Window:
        window = window_of(request.query_params)
        if viewer.tenants is None:
            return window
        if window.tenant is None:  # a tenant's token reads its own tenant only
            (only,) = viewer.tenants
            return Window(window.since, window.until, only, window.label)
        if window.tenant not in viewer.tenants:
            raise NotFound(window.tenant)
        return window

    def api(self, name: str, compute: Callable[[Window, Request], Any]) -> Handler:
        async def endpoint(request: Request) -> Response:
            viewer = self._viewer(request)
            if viewer is None:
                return _refused(self._unauthenticated())
            try:
                window = self._window(request, viewer)
                key = (
                    name,
                    tuple(sorted(request.query_params.items())),
                    tuple(request.path_params.items()),
                    window.tenant,
                    window.label != "custom" and window.label,
                )
                body = await run_in_threadpool(
                    self.reader.cached, (*key, _minute()), lambda: dumps(compute(window, request))
                )
            except BadRequest as exc:
                return _refused(exc)
            except (NotFound, TraceNotFound):
                return _error(404, f"no such {name.split('/')[0].rstrip('s')} in this window and tenant")
            except duckdb.Error as exc:
                return _query_failed(exc)
            return json_bytes(body)

        return endpoint

    def _unauthenticated(self) -> Unauthenticated:
        if self.access.open_but_locked:
            return Unauthenticated(
                "ingest tokens are configured (receivers.otlp.auth) but no read token: add api.auth.tokens "
                "(a tenant's, or admin: true) to read the dashboard and the API"
            )
        return Unauthenticated("a read token is needed: Authorization: Bearer <token> (api.auth.tokens)")

    def page(self, name: str, title: str) -> Handler:
        async def endpoint(request: Request) -> Response:
            viewer = self._viewer(request)
            if viewer is None:
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': here})}", 303)
            body = self.templates.get_template("page.html").render(
                page=name,
                title=title,
                pages=PAGES,
                ranges=RANGES,
                note=self.open_note,
                params=dict(request.path_params),
                signed_in=viewer is not ANYONE or self.access.required,
            )
            return Response(body, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

        return endpoint

    async def login(self, request: Request) -> Response:
        message = None
        if request.method == "POST":
            if not _same_origin(request):
                return _error(403, "sign in from this server's own login page")
            form = parse_qs((await request.body()).decode("utf-8", "replace"))  # one field: no multipart
            token = (form.get("token") or [""])[0]
            if self.access.viewer(token) is not None:
                target = str(request.query_params.get("next") or "/")
                response = RedirectResponse(
                    target if target.startswith("/") and not target.startswith("//") else "/", 303
                )
                response.set_cookie(
                    COOKIE, token, httponly=True, samesite="strict", max_age=30 * 86400,
                    secure=request.url.scheme == "https",
                )  # fmt: skip
                return response
            message = "That token is not a read token of this agentwatch."
        body = self.templates.get_template("login.html").render(
            message=message, locked=self.access.open_but_locked
        )
        return Response(
            body,
            media_type="text/html; charset=utf-8",
            headers=_PAGE_HEADERS,
            status_code=Unauthenticated.http_status if message else 200,
        )

    async def logout(self, request: Request) -> Response:
        if not _same_origin(request):
            return _error(403, "sign out from this server's own pages")
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    async def cases(self, request: Request) -> Response:
        """The agent's failed runs as eval cases (JSONL), as ``agentwatch cases export`` writes."""
        viewer = self._viewer(request)
        if viewer is None:
            return _refused(self._unauthenticated())
        try:
            window = self._window(request, viewer)
        except BadRequest as exc:
            return _refused(exc)
        except NotFound:
            return _error(404, "no such agent in this window and tenant")
        agent = request.path_params["agent"]
        try:
            data = await run_in_threadpool(self._cases, window, agent, request.query_params.get("cluster"))
        except duckdb.Error as exc:
            return _query_failed(exc)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", agent)
        return Response(
            data,
            media_type="application/x-ndjson",
            headers={"content-disposition": f'attachment; filename="cases-{name}.jsonl"'},
        )

    def _cases(self, window: Window, agent: str, cluster: str | None) -> bytes:
        from report.cases import export_cases
        from storage.runs import TEXTS

        out = BytesIO()
        with self.reader.connection() as con:
            export_cases(self.reader.runs(con, window, agent, TEXTS), out, cluster)
        return out.getvalue()

    async def budget_states(self, request: Request) -> Response:
        """Each budget the caller may read: this month's spend, its share of the budget, the
        forecast, and ``over_budget`` (a hard budget spent: a state to act on)."""
        viewer = self._viewer(request)
        if viewer is None:
            return _refused(self._unauthenticated())
        mine = {
            name: b
            for name, b in self.budgets.items()
            if viewer.tenants is None or b.tenant in viewer.tenants
        }

        def compute() -> bytes:
            with self.reader.connection() as con:
                states = budget_states(con, mine, datetime.now(UTC), forecast=forecast_available())
            return dumps({"budgets": [state_dict(s) for s in states]})

        try:
            body = await run_in_threadpool(
                self.reader.cached, ("budgets", tuple(sorted(mine)), _minute()), compute
            )
        except duckdb.Error as exc:
            return _query_failed(exc)
        return json_bytes(body)

    async def tenants(self, request: Request) -> Response:
        viewer = self._viewer(request)
        if viewer is None:
            return _refused(self._unauthenticated())
        root = self.reader.data_dir / "spans"
        found = sorted(p.name.removeprefix("tenant=") for p in root.glob("tenant=*")) if root.is_dir() else []
        if viewer.tenants is not None:
            found = [t for t in found if t in viewer.tenants] or sorted(viewer.tenants)
        return json_response({"tenants": found, "restricted": viewer.tenants is not None})


_PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _same_origin(request: Request) -> bool:
    """A form posted from this server's own pages (``Origin``, else ``Referer``, names this host);
    a request that sends neither (not a browser) is let through."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    sent = urlsplit(origin)
    return (sent.scheme, sent.netloc) == (request.url.scheme, request.url.netloc)


def _minute() -> str:
    """Part of every cache key: a relative window ("last 24h") moves on even without new data."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M")


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def routes(dashboard: Dashboard) -> list[BaseRoute]:
    d = dashboard
    static = Path(__file__).parent / "static"

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "plotly.min.js":
            return FileResponse(_plotly_js(), media_type="text/javascript", headers=_CACHE)
        path = static / name
        if "/" in name or not path.is_file():
            return _error(404, "no such file")
        return FileResponse(path, headers=_CACHE)

    api = [
        ("overview", "/api/v1/overview", lambda w, r: overview_view(d.reader, w)),
        ("agents", "/api/v1/agents", lambda w, r: agents_view(d.reader, w)),
        (
            "agents/agent",
            "/api/v1/agents/{agent}",
            lambda w, r: agent_view(d.reader, w, r.path_params["agent"]),
        ),
        (
            "agents/agent/implicit",
            "/api/v1/agents/{agent}/implicit",
            lambda w, r: implicit_view(d.reader, w, r.path_params["agent"], d.implicit),
        ),
        ("operations", "/api/v1/operations", lambda w, r: operations_view(d.reader, w)),
        ("evals", "/api/v1/evals", lambda w, r: evals_view(d.reader, w)),
        ("alerts", "/api/v1/alerts", lambda w, r: alerts_view(d.reader, w)),
        ("cost", "/api/v1/cost", lambda w, r: cost_view(d.reader, w, r.query_params.get("by", "agent"))),
        ("cost/leaks", "/api/v1/cost/leaks", lambda w, r: leaks_view(d.reader, w)),
    ]
    out: list[BaseRoute] = [Route(path, d.api(name, compute), methods=["GET"]) for name, path, compute in api]

    async def trace_api(request: Request) -> Response:
        viewer = d._viewer(request)
        if viewer is None:
            return _refused(d._unauthenticated())
        trace_id = request.path_params["trace_id"]
        if not _TRACE_ID.fullmatch(trace_id):
            return _refused(BadRequest("trace_id: must be 32 hex digits"))
        # ?tenant= picks one tenant's trace of this id (another tenant's may share it).
        tenants = viewer.tenants
        asked = request.query_params.get("tenant")
        if asked:
            tenants = frozenset({asked}) if tenants is None or asked in tenants else frozenset()
        try:
            body = await run_in_threadpool(
                d.reader.cached,
                ("trace", trace_id.lower(), None if tenants is None else tuple(sorted(tenants))),
                lambda: dumps(trace_view(d.reader, trace_id, tenants)),
            )
        except TraceNotFound:
            return _error(404, "no such trace")
        except duckdb.Error as exc:
            return _query_failed(exc)
        return json_bytes(body)

    out += [
        Route("/api/v1/traces/{trace_id}", trace_api, methods=["GET"]),
        Route("/api/v1/agents/{agent}/cases.jsonl", d.cases, methods=["GET"]),
        Route("/api/v1/tenants", d.tenants, methods=["GET"]),
        Route("/api/v1/budgets", d.budget_states, methods=["GET"]),
        Route("/login", d.login, methods=["GET", "POST"]),
        Route("/logout", d.logout, methods=["POST"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/agents/{agent}", d.page("agent", "Agent"), methods=["GET"]),
        Route("/traces/{trace_id}", d.page("trace", "Trace"), methods=["GET"]),
    ]
    out += [Route(path, d.page(name, title), methods=["GET"]) for name, (path, title) in PAGES.items()]
    return out


_CACHE = {"cache-control": "public, max-age=3600"}
