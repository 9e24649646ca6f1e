"""The dashboard: a small Starlette app over a Runtime (memory, the local stack, a project).

Server-rendered Jinja2 pages; one small script refreshes a running run's page. Retry and cancel
are POSTs that only an operator may make: anyone locally (no IAP audience, no operators), and
behind IAP the identities listed in KUMOFLOW_UI_OPERATORS, proven by IAP's signed assertion
(orchestrator/ui/_iap.py). Read-only otherwise, and the POSTs answer 403.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.local import cancel_run, retry_run
from orchestrator.runtime import Runtime
from orchestrator.ui._iap import ASSERTION, AUDIENCE_ENV, IapVerifier
from orchestrator.ui._views import can_retry, flows_view, run_view, runs_page, task_view

HERE = Path(__file__).parent
OPERATORS_ENV = "KUMOFLOW_UI_OPERATORS"


def create_app(
    rt: Runtime,
    *,
    read_only: bool = False,
    operators: str | None = None,
    iap_audience: str | None = None,
) -> Starlette:
    """The dashboard over `rt`. `operators`: comma-separated emails allowed to act, proven by
    IAP's signed assertion for `iap_audience` (defaults: env KUMOFLOW_UI_OPERATORS and
    KUMOFLOW_IAP_AUDIENCE). With neither, anyone may act (local use); with an audience and no
    operators, nobody may."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    env.filters["when"] = _when
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

    def page(request: Request, name: str, **values: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, can_act=can_act(request), **values)
        return HTMLResponse(html)

    async def runs(request: Request) -> Response:
        q = request.query_params
        before = datetime.fromisoformat(q["before"]) if q.get("before") else None
        found, cursor = runs_page(
            rt, flow=q.get("flow"), status=q.get("status"), trigger=q.get("trigger"), before=before
        )
        return page(request, "runs.html", runs=found, cursor=cursor, q=q)

    async def run(request: Request) -> Response:
        q = request.query_params
        view = run_view(
            rt, request.path_params["run_id"], page=int(q.get("page", 1)), node=q.get("node")
        )
        name = "_live.html" if q.get("fragment") else "run.html"
        return page(request, name, v=view, can_retry=can_retry(view.run))

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
            Route("/runs/{run_id}/{action}", act, methods=["POST"]),
            Route("/flows", flows),
            Route("/dlq", letters),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={NotFoundError: not_found},
    )


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
