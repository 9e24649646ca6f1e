"""The dashboard: a small Starlette app over a Runtime (memory, the local stack, a project).

Server-rendered Jinja2 pages; one small script refreshes a running run's page. Retry and cancel
are POSTs that only an operator may make: anyone locally (no IAP audience, no operators), and
behind IAP the identities listed in KUMOFLOW_UI_OPERATORS, proven by IAP's signed assertion
(orchestrator/ui/_iap.py). Read-only otherwise, and the POSTs answer 403. A paused run's form
(`pause(input=Model)`) is an operator's too; a signed callback link (orchestrator.waits
`resume_url`) opens the same form to whoever holds the link, until it expires.

A browser sends IAP's session (so an operator's assertion) with any site's form POST too: the
POSTs also answer 403 to another site's request (Sec-Fetch-Site cross-site or same-site, or an
Origin other than the Host). And the app answers only the host names it is served as (400
otherwise, Starlette's TrustedHostMiddleware): KUMOFLOW_UI_ALLOWED_HOSTS (infra/ sets the
service's run.app names), else localhost and 127.0.0.1, so a name an attacker rebinds to
127.0.0.1 reaches nothing of a local `kumoflow ui`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.contracts import RunStatus, TriggerKind
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.local import cancel_run, duration_text, retry_run
from orchestrator.runtime import Runtime, user_traceback
from orchestrator.ui._iap import ASSERTION, AUDIENCE_ENV, IapVerifier
from orchestrator.ui._views import can_retry, flows_view, run_view, runs_view, task_view
from orchestrator.waits import (
    InputRefused,
    NotWaiting,
    callback_page,
    form_fields,
    form_values,
    handle_of,
    resume,
    waiting,
    waiting_for,
    waiting_pauses,
)

HERE = Path(__file__).parent
OPERATORS_ENV = "KUMOFLOW_UI_OPERATORS"
HOSTS_ENV = "KUMOFLOW_UI_ALLOWED_HOSTS"  # comma-separated; "*.example.com" covers subdomains
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def create_app(
    rt: Runtime,
    *,
    read_only: bool = False,
    operators: str | None = None,
    iap_audience: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The dashboard over `rt`. `operators`: comma-separated emails allowed to act, proven by
    IAP's signed assertion for `iap_audience` (defaults: env KUMOFLOW_UI_OPERATORS and
    KUMOFLOW_IAP_AUDIENCE). With neither, anyone may act (local use); with an audience and no
    operators, nobody may. `allowed_hosts`: the host names it answers (default: env
    KUMOFLOW_UI_ALLOWED_HOSTS, else localhost and 127.0.0.1)."""
    env = _templates()
    allowed = {
        e.strip().lower()
        for e in (operators or os.environ.get(OPERATORS_ENV, "")).split(",")
        if e.strip()
    }
    audience = (iap_audience or os.environ.get(AUDIENCE_ENV, "")).strip()
    if allowed and not audience:
        # Operators without an audience could only be told apart by a forgeable header.
        raise KumoflowError(
            f"{OPERATORS_ENV} names operators but {AUDIENCE_ENV} is not set, so no identity "
            f"can be verified: set {AUDIENCE_ENV} to the service's IAP audience "
            "(/projects/NUMBER/locations/REGION/services/NAME; infra/ sets both), or unset "
            f"{OPERATORS_ENV} for local use"
        )
    verifier = IapVerifier.from_env(audience) if audience else None

    def can_act(request: Request) -> bool:
        if read_only:
            return False
        if verifier is None:
            return True  # local use: no IAP in front, no operators named
        email = verifier.email(request.headers.get(ASSERTION))
        return email is not None and email in allowed

    def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, can_act=can_act(request), **values)
        return HTMLResponse(html, status_code=status)

    async def runs(request: Request) -> Response:
        q = request.query_params
        found, cursor = runs_view(rt, flow=q.get("flow"), **_filters(q))
        return page(request, "runs.html", runs=found, cursor=cursor, q=q)

    async def run(request: Request) -> Response:
        q = request.query_params
        view = run_view(
            rt, request.path_params["run_id"], page=int(q.get("page", 1)), node=q.get("node")
        )
        name = "_live.html" if q.get("fragment") else "run.html"
        return page(
            request, name, v=view, can_retry=can_retry(view.run), **_waiting(rt, view.run.run_id)
        )

    async def give(request: Request) -> Response:
        """A pause's form, for operators (as retry and cancel)."""
        if not can_act(request):
            raise HTTPException(403, "read-only: this identity may not give a paused run input")
        return await input_page(rt, request, "/runs/{run_id}/input/{key}", page)

    async def task(request: Request) -> Response:
        run_, record, attempts = task_view(
            rt, request.path_params["run_id"], request.path_params["key"]
        )
        return page(request, "task.html", run=run_, task=record, attempts=attempts)

    async def flows(request: Request) -> Response:
        return page(request, "flows.html", flows=flows_view(rt))

    async def letters(request: Request) -> Response:
        return page(request, "dlq.html", letters=rt.letters.list(100))

    async def act(request: Request) -> Response:
        foreign = _cross_site(request)
        if foreign is not None:
            raise HTTPException(
                403,
                f"cross-site request refused: {foreign}; retry and cancel are accepted from "
                "the dashboard's own pages only",
            )
        if not can_act(request):
            raise HTTPException(403, "read-only: this identity may not retry or cancel runs")
        run_id, action = request.path_params["run_id"], request.path_params["action"]
        try:
            if action == "retry":
                retry_run(rt, run_id)
            elif action == "cancel":
                cancel_run(rt, run_id, "cancelled from the dashboard")
            else:
                raise HTTPException(404)
        except NotFoundError as e:
            raise HTTPException(404, str(e)) from e
        except KumoflowError as e:
            raise HTTPException(409, str(e)) from e
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse(f"<h1>not found</h1><p>{_escape(str(exc))}</p>", status_code=404)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/runs", runs),
            Route("/runs/{run_id}", run),
            Route("/runs/{run_id}/tasks/{key:path}", task),
            Route("/runs/{run_id}/input/{key}", give, methods=["GET", "POST"]),
            Route(
                "/callback/{run_id}/{key}",
                functools.partial(signed_input_page, rt),
                methods=["GET", "POST"],
            ),
            Route("/runs/{run_id}/{action}", act, methods=["POST"]),
            Route("/flows", flows),
            Route("/dlq", letters),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={NotFoundError: not_found},
        middleware=[
            Middleware(
                TrustedHostMiddleware, allowed_hosts=_hosts(allowed_hosts), www_redirect=False
            )
        ],
    )


def _waiting(rt: Runtime, run_id: str) -> dict[str, Any]:
    """What the run's parked nodes wait for, and which of them are pauses (a form)."""
    snap = rt.state.load(run_id)
    waits = waiting(snap.outbox) if snap else {}
    return {"waiting": waits, "pauses": set(waiting_pauses(rt, run_id)) if waits else set()}


async def signed_input_page(rt: Runtime, request: Request) -> Response:
    """A pause's form behind a signed link (orchestrator.waits.resume_url): the link is the
    permission, until it expires. The same page the public callback function serves in the
    cloud (orchestrator.waits.callback_page)."""
    body = await request.body() if request.method == "POST" else b""
    shown = callback_page(rt, request.method, request.url.path, request.query_params, body)
    return HTMLResponse(shown.html, status_code=shown.status)


async def input_page(
    rt: Runtime, request: Request, action: str, page: Callable[..., HTMLResponse]
) -> Response:
    """A paused node's form (GET), or its posted input given to `resume` (POST): refused
    input shows the model's errors (422) and changes nothing."""
    if request.method == "POST" and (foreign := _cross_site(request)) is not None:
        raise HTTPException(403, f"cross-site request refused: {foreign}")
    run_id, key = request.path_params["run_id"], request.path_params["key"]
    entry = waiting_pauses(rt, run_id).get(key)
    if entry is None:
        raise HTTPException(409, f"node {key!r} of run {run_id} is not waiting for input")
    handle = handle_of(entry)
    schema = handle.get("schema")
    schema = schema if isinstance(schema, dict) else {}
    values: dict[str, Any] = {
        "run_id": run_id,
        "key": key,
        "title": schema.get("title", "Input"),
        "waiting": waiting_for(handle),
        "fields": form_fields(schema),
        "action": action.format(run_id=run_id, key=key),
        "errors": [],
        "done": None,
    }
    if request.method != "POST":
        return page(request, "input.html", **values)
    # A urlencoded form, read without python-multipart (not a dependency of the dashboard).
    posted = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    try:
        done = resume(rt, run_id, form_values(schema, posted), key=key)
    except InputRefused as e:
        return page(request, "input.html", 422, **{**values, "errors": e.errors})
    except NotWaiting as e:
        raise HTTPException(409, str(e)) from e
    return page(request, "input.html", **{**values, "done": done.value})


def _filters(q: Mapping[str, str]) -> dict[str, Any]:
    """The run list's status, trigger and page cursor, typed (a bad one answers 400)."""
    try:
        return {
            "status": RunStatus(q["status"].upper()) if q.get("status") else None,
            "trigger": TriggerKind(q["trigger"]) if q.get("trigger") else None,
            "before": datetime.fromisoformat(q["before"]) if q.get("before") else None,
        }
    except ValueError as e:
        raise HTTPException(400, f"bad filter: {e}") from e


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    env.filters["when"] = _when
    env.filters["duration"] = duration_text
    env.filters["user_trace"] = user_traceback
    env.globals.update(run_statuses=list(RunStatus), triggers=list(TriggerKind))
    return env


def _hosts(given: Sequence[str] | None) -> list[str]:
    names = given if given is not None else os.environ.get(HOSTS_ENV, "").split(",")
    found = [n.strip().lower() for n in names if n.strip()]
    return found or list(LOCAL_HOSTS)


def _cross_site(request: Request) -> str | None:
    """Why this request comes from another site, or None. Browsers send Sec-Fetch-Site and
    Origin with every POST; a request with neither is no browser's (it carries no session)."""
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site is {site}"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "").lower()
        # Only the host and port: behind IAP the browser's scheme (https) is not the app's.
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"Origin {origin[:200]!r} is not this dashboard's ({host[:200]})"
    return None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serve(
    target: Runtime | Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    read_only: bool = False,
) -> None:
    """Run the dashboard (over a runtime, or an app `create_app` made) until interrupted."""
    import uvicorn

    app = target if isinstance(target, Starlette) else create_app(target, read_only=read_only)
    uvicorn.run(app, host=host, port=port, log_level="warning")
