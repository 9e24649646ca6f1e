"""Tiny stdlib HTTP and socket helpers (urllib keeps `import emulators` cheap)."""

from __future__ import annotations

import errno
import socket
import urllib.error
import urllib.request

__all__ = ["http_ok", "http_request", "port_accepts", "port_free"]

# No proxies: an HTTP(S)_PROXY in the user's env must not swallow requests to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Return (status, body) for any HTTP status; raise OSError if nothing answers."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        # HTTPError owns the response socket: close it or pytest reports a ResourceWarning.
        with e:
            return int(e.code), e.read()
    except urllib.error.URLError as e:
        reason = e.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from e


def http_ok(url: str, *, timeout: float = 1.0) -> bool:
    """True when GET url answers 200."""
    try:
        status, _ = http_request("GET", url, timeout=timeout)
    except (OSError, ValueError):
        return False
    return status == 200


def port_accepts(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True when host:port can be bound (ignores TIME_WAIT leftovers, unlike a plain bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    # A listener on 0.0.0.0 or another address family may still answer on host:port.
    return not port_accepts(host, port, timeout=0.2)
