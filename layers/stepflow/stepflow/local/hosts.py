"""Which requests a server on this machine answers: the DNS-rebinding and cross-origin guard.

A web page can make a browser send requests to ``127.0.0.1`` in two ways: by
rebinding its own domain name to 127.0.0.1 (its requests then carry
``Host: evil.example:PORT``) or by posting across origins (an ``Origin`` header
naming its own site). :class:`HostGuard` refuses both for a server bound to a
loopback address: the ``Host`` must name this server (its bound host,
``localhost``, ``127.0.0.1`` or ``[::1]``, with its port) and an ``Origin``, if
sent, must be ``http://`` + that ``Host``. SDKs and the AWS CLI send no
``Origin`` and the ``Host`` of the URL they were given, so they pass. Used by
``stepflow local``'s gateway and ``stepflow proxy``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["HostGuard", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``, ``[::1]``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostGuard:
    """The ``Host`` values a server answers (empty: any) and the origin check."""

    hosts: frozenset[str]

    @classmethod
    def for_server(cls, host: str, port: int) -> HostGuard:
        """The guard for a server bound to ``host:port``: none unless ``host`` is loopback."""
        if not is_loopback(host):
            return cls(frozenset())
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        names = {shown, "localhost", "127.0.0.1", "[::1]"}
        return cls(frozenset(f"{name}:{port}" for name in names))

    def refuses(self, host: str | None, origin: str | None) -> bool:
        """Whether a request with these ``Host`` and ``Origin`` headers is refused.

        Refused: a ``Host`` that is not this server's (a rebound name), an
        ``Origin`` that is not this server (another site's page).
        """
        host = host or ""
        if self.hosts and host not in self.hosts:
            return True
        return origin is not None and origin not in (f"http://{host}", f"https://{host}")
