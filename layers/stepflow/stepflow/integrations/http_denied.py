"""The endpoints no HTTP task may reach: the stack's own AWS endpoints.

``stepflow local`` runs DynamoDB, SQS and S3 on moto (or LocalStack, or
DynamoDB Local), which check no request signature: an ``http:invoke`` or
``apigateway:invoke`` task sent there would act on the stack's own table,
queues and bucket with no credentials at all (a ``DeleteTable`` of the log).
The edge that knows those endpoints names them (:class:`DeniedEndpoints`) and
the HTTP port refuses a request to any of them, before it connects (the URL's
host resolved) and again once connected (the peer's address), so that neither
another spelling of the host (``localhost``, ``127.0.0.2``, ``[::1]``,
``0.0.0.0``, ``2130706433``, ``0x7f000001``) nor a DNS answer that changes
between the check and the connection reaches them. Redirects are never
followed (:mod:`stepflow.integrations.http_port`).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to as a connection would resolve it ([] if none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


@lru_cache(maxsize=1)
def _own_host_addresses() -> frozenset[Address]:
    """The addresses of this machine's host name (best effort)."""
    found: set[Address] = set()
    for text in resolve(socket.gethostname(), 0):
        address = address_of(text)
        if address is not None:
            found.add(address)
    return frozenset(found)


def address_of(text: str) -> Address | None:
    """The IP address ``text`` spells (an IPv4-mapped IPv6 as its IPv4; None: not an address)."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_this_host(address: Address) -> bool:
    """Whether a connection to ``address`` reaches this machine (loopback, any, own address)."""
    return address.is_loopback or address.is_unspecified or address in _own_host_addresses()


def endpoint_of(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) URL (the scheme's port when none), None if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


class DeniedEndpoints:
    """The stack's own endpoints (``host:port``) an HTTP task is refused.

    A request to ``host:port`` is refused when ``port`` is a denied endpoint's
    and the host is the same name, resolves to one of the same addresses, or
    both reach this machine (loopback, ``0.0.0.0``/``::`` or one of its own
    addresses: a server listening on one loopback address may listen on all).
    :meth:`add` names one more (``stepflow local`` adds its API once it listens).
    """

    def __init__(self, urls: Iterable[str] = (), *, resolver: Resolve = resolve) -> None:
        self._resolve = resolver
        self._lock = threading.Lock()
        self._endpoints: set[tuple[str, int]] = set()
        for url in urls:
            self.add(url)

    def add(self, url: str) -> None:
        """Deny the endpoint of ``url`` (ignored if it is not an http(s) URL)."""
        endpoint = endpoint_of(url)
        if endpoint is not None:
            with self._lock:
                self._endpoints.add(endpoint)

    @property
    def endpoints(self) -> frozenset[tuple[str, int]]:
        """The ``(host, port)`` pairs denied."""
        with self._lock:
            return frozenset(self._endpoints)

    def refusal(self, host: str, port: int, peer: str | None = None) -> str | None:
        """Why a request to ``host:port`` is refused (None: it is not).

        ``peer`` is the address actually connected to; without it, ``host`` is
        resolved (an IP literal in any form the resolver accepts).
        """
        same_port = [h for h, p in self.endpoints if p == port]
        if not same_port:
            return None  # nothing to resolve: most requests stop here
        name = host.strip("[]").lower()
        candidates = self._addresses(name, port) if peer is None else _set([peer])
        for denied_host in same_port:
            if name == denied_host:
                return _cause(host, port)
            denied = self._addresses(denied_host.strip("[]"), port)
            if candidates & denied or (
                any(map(is_this_host, candidates)) and any(map(is_this_host, denied))
            ):
                return _cause(host, port)
        return None

    def _addresses(self, host: str, port: int) -> set[Address]:
        literal = address_of(host)
        if literal is not None:
            return {literal}
        return _set(self._resolve(host, port))


def _set(texts: Iterable[str]) -> set[Address]:
    return {a for a in map(address_of, texts) if a is not None}


def _cause(host: str, port: int) -> str:
    return (
        f"The endpoint {host}:{port} is one of the stack's own AWS endpoints, "
        "which no HTTP task may call"
    )
