"""What is refused before a route runs: a foreign Host, a foreign Origin on a write, a body over
the limit. Each is a pure ASGI layer, so nothing of a refused request reaches the routes."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    """The request body passed the limit while it was read."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str, extra: str) -> list[str]:
    """The Host names to answer: loopback's, the bound address (unless a wildcard), the extra."""
    hosts = list(LOOPBACK_NAMES)
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.append(bind_host)
    hosts.extend(name.strip() for name in extra.split(",") if name.strip())
    # Starlette compares the Host header without its port; an IPv6 literal comes bracketed.
    return [f"[{host}]" if ":" in host else host for host in dict.fromkeys(hosts)]


class SameOriginWrites:
    """Refuse a write (POST...) sent by a web page of another origin than the API's own.

    A multipart POST needs no CORS preflight, so without this any page the operator opens could
    upload into a local API. Clients that are not browsers send no Origin and are let through.
    """

    def __init__(self, app: ASGIApp, *, allowed_origins: str = ""):
        self.app = app
        self.allowed = {o.strip().rstrip("/") for o in allowed_origins.split(",") if o.strip()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self._allowed(origin, headers.get("host", "")):
                response = JSONResponse(
                    {
                        "detail": f"writes from the web origin {origin!r} are refused; "
                        "send them from the API's own origin or list it in API_ALLOWED_ORIGINS"
                    },
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _allowed(self, origin: str, host: str) -> bool:
        if origin.rstrip("/") in self.allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


class BodyLimit:
    """A request body of at most `limit` bytes: 413 at once when Content-Length says more, and
    BodyTooLarge raised from `receive` when a body without one (chunked) runs past it."""

    def __init__(self, app: ASGIApp, *, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            status = 413 if declared.isdigit() else 400
            response = JSONResponse(
                {"detail": self._detail() if status == 413 else "Content-Length is malformed"},
                status_code=status,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return too_large_detail(self.limit)


def too_large_detail(limit: int) -> str:
    return (
        f"the request body is over {limit // 2**20} MiB (MAX_UPLOAD_MB and 1 MiB of multipart "
        "framing); split the file or ask for a higher limit"
    )
