"""The client's address behind a known number of proxies (``ETHIX_TRUSTED_PROXY_HOPS``), both services.

Each proxy in front of the service appends the address it received the request from to
``X-Forwarded-For``; whatever the client wrote itself comes first. So behind N proxies the client is the
N-th entry from the right, and only that one can be trusted: Cloud Run's front end makes N = 1, an
external Application Load Balancer in front of Cloud Run N = 2, the local router N = 1 (it passes the
header as Cloud Run does). uvicorn's ``FORWARDED_ALLOW_IPS='*'`` would take the leftmost entry instead,
which any client can make up to dodge its limits; the server therefore runs with uvicorn's proxy
headers off and this middleware sets ``scope["client"]``, which the rate limits, the login throttle and
the access log read.

With N = 0 (the default) the peer is the client. A request with fewer entries than N did not come through
every proxy; its peer stays the client, which lumps such requests together rather than trusting them.
"""

from __future__ import annotations

import ipaddress

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.settings import ServiceSettings

_HEADER = b"x-forwarded-for"
# An IPv6 subscriber is normally given a whole /64 (RFC 6177), so it can send from 2^64 addresses.
IPV6_SUBSCRIBER_PREFIX = 64


def scope_client(scope: Scope) -> str:
    """The client's address as the middlewares left it in the ASGI scope ("unknown" without one)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def subscriber(address: str) -> str:
    """What per-client limits count ``address`` as: an IPv4 address itself (an IPv4-mapped IPv6 one as
    its IPv4 form), an IPv6 address its /64 network. Counting single IPv6 addresses would let one
    subscriber spread its attempts over 2^64 of them."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(ip)


def forwarded_client(values: list[str], hops: int) -> str | None:
    """The address ``hops`` entries from the right of the ``X-Forwarded-For`` lines ``values``, or None
    when there are fewer entries or that one is not an IP address."""
    if hops < 1:
        return None
    entries = [entry.strip() for value in values for entry in value.split(",") if entry.strip()]
    if len(entries) < hops:
        return None
    try:
        return str(ipaddress.ip_address(entries[-hops]))
    except ValueError:
        return None


class ForwardedClient:
    """Pure ASGI: replaces ``scope["client"]`` with the forwarded client when the proxies named one."""

    def __init__(self, app: ASGIApp, hops: int):
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = [value.decode("latin-1") for name, value in scope["headers"] if name == _HEADER]
            address = forwarded_client(values, self.hops)
            if address is not None:
                scope["client"] = (address, 0)
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Install last (outermost), so every other middleware and the access log see the client."""
    if settings.trusted_proxy_hops:
        app.add_middleware(ForwardedClient, hops=settings.trusted_proxy_hops)
