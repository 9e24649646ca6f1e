"""What the REST stand-ins (Cloud Run, Cloud Tasks) share: Google's error shape, the JSON
request handler, and the duration strings of their APIs ("3.5s")."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def seconds(duration: str | None, default: float) -> float:
    return float(duration.rstrip("s")) if duration else default


class JsonHandler(BaseHTTPRequestHandler):
    """Routes every method to `dispatch(method, path, query)`; its value is the 200 reply, an
    ApiError the error reply Google's clients expect."""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stack's log stays quiet; requests are not the interesting part

    def reply(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def dispatch(self, method: str, path: str, query: dict[str, str]) -> Any:
        raise NotImplementedError

    def _route(self, method: str) -> None:
        path, _, raw = self.path.partition("?")
        query = dict(p.split("=", 1) for p in raw.split("&") if "=" in p)
        try:
            self.reply(200, self.dispatch(method, path, query))
        except ApiError as e:
            self.reply(e.code, {"error": {"code": e.code, "message": str(e), "status": e.status}})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")
