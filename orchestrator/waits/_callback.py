"""A signed callback link's page: the pause's form, shown to whoever holds a link
`resume_url` signed, and its posted input given to `resume`; anything else answers 403.

One implementation for both places a link is opened: the dashboard's `/callback/...` route
(`kumoflow ui`, locally) and, in the cloud, where the dashboard is behind IAP and a link in a
chat message or an email could not reach it, the public `resume_callback` function
(functions/main.py, infra/callback.tf). So it needs nothing of the dashboard: no templates, no
web framework, only the request's method, path, query and body, and it reads and writes only
through `resume`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from pydantic import JsonValue

from orchestrator.io import services
from orchestrator.runtime import Runtime
from orchestrator.waits._form import FormField, Widget, form_fields, form_values
from orchestrator.waits._nodes import handle_of, waiting_for
from orchestrator.waits._pause import InputRefused, NotWaiting, resume, verify, waiting_pauses

CALLBACK_PATH = "/callback/"  # then the run id and the node's key, each URL-quoted


@dataclass(frozen=True)
class CallbackPage:
    status: int
    html: str


def callback_page(
    rt: Runtime, method: str, path: str, query: Mapping[str, str], body: bytes = b""
) -> CallbackPage:
    """GET: the pause's form; POST (a urlencoded form): its input, resumed. 403 unless the
    path names a run and node that the query's `expires` and `sig` sign, before they expire."""
    run_id, key = _named(path)
    if run_id is None or key is None:
        return _refused("this is not a link to a paused run")
    try:
        with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
            verify(run_id, key, int(query.get("expires", "0")), query.get("sig", ""))
    except (InputRefused, ValueError) as e:
        return _refused(f"this link does not resume the run: {e}")
    entry = waiting_pauses(rt, run_id).get(key)
    if entry is None:
        return _page(409, "Not waiting", f"<p>{_e(key)} of run {_e(run_id)} waits for nothing.</p>")
    handle = handle_of(entry)
    schema = handle.get("schema")
    schema = schema if isinstance(schema, dict) else {}
    title = str(schema.get("title", "Input"))
    fields = form_fields(schema)
    intro = (
        f"<p>Run {_e(run_id)} waits at <code>{_e(key)}</code> for {_e(waiting_for(handle))}.</p>"
    )
    if method.upper() != "POST":
        return _page(200, title, intro + _form(fields))
    posted = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    try:
        done = resume(rt, run_id, form_values(schema, posted), key=key)
    except InputRefused as e:
        return _page(422, title, intro + _errors(e.errors) + _form(fields))
    except NotWaiting as e:
        return _page(409, "Not waiting", f"<p>{_e(str(e))}</p>")
    shown = json.dumps(done.value, sort_keys=True)
    return _page(200, title, intro + f'<p class="ok">Resumed with <code>{_e(shown)}</code>.</p>')


def _named(path: str) -> tuple[str | None, str | None]:
    """(run id, node key) of `/callback/RUN/KEY` (each one quoted path segment)."""
    if not path.startswith(CALLBACK_PATH):
        return None, None
    parts = path[len(CALLBACK_PATH) :].split("/")
    if len(parts) != 2 or not all(parts):
        return None, None
    return unquote(parts[0]), unquote(parts[1])


def _e(text: object) -> str:
    return html.escape(str(text))


def _refused(why: str) -> CallbackPage:
    return _page(403, "Forbidden", f"<p>{_e(why)}</p>")


def _page(status: int, title: str, main: str) -> CallbackPage:
    return CallbackPage(
        status,
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)} · kumoflow"
        f"</title><meta name='referrer' content='no-referrer'></head>"  # the link is a secret
        f"<body><h1>{_e(title)}</h1>{main}</body></html>",
    )


def _errors(errors: list[dict[str, Any]]) -> str:
    items = "".join(
        f"<li>{_e('.'.join(str(p) for p in e.get('loc', ())))}: {_e(e.get('msg', ''))}</li>"
        for e in errors
    )
    return f'<ul class="errors">{items}</ul>'


def _form(fields: list[FormField]) -> str:
    """The form posts back to the same URL (the signed query comes with it)."""
    rows = "".join(
        f"<p><label>{_e(f.title)}{' *' if f.required else ''} {_input(f)}</label></p>"
        for f in fields
    )
    return f'<form method="post">{rows}<p><button type="submit">Resume</button></p></form>'


def _input(f: FormField) -> str:
    name, default = _e(f.name), f.default
    if f.widget is Widget.CHECKBOX:
        return f'<input type="checkbox" name="{name}"{" checked" if default else ""}>'
    if f.widget is Widget.CHOICE:
        options = "".join(
            f"<option{' selected' if c == default else ''}>{_e(c)}</option>" for c in f.choices
        )
        return f'<select name="{name}">{options}</select>'
    value = "" if default is None else _shown(f, default)
    if f.widget is Widget.JSON:
        return f'<textarea name="{name}">{_e(value)}</textarea>'
    kind = "number" if f.widget is Widget.NUMBER else "text"
    step = f' step="{_e(f.step)}"' if kind == "number" else ""
    return f'<input type="{kind}"{step} name="{name}" value="{_e(value)}">'


def _shown(f: FormField, default: JsonValue) -> str:
    return json.dumps(default) if f.widget is Widget.JSON else str(default)
