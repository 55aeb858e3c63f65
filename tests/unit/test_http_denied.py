"""The HTTP port refuses the stack's own AWS endpoints, in every spelling of their host.

Real servers on loopback stand in for moto (denied) and a user's API (allowed);
each test counts the requests the denied server received: zero, however the
host is written, through a redirect, or when the name resolves elsewhere at the
check and to the denied server at the connection (DNS rebinding). The shipping
path (a DeleteTable through ``http:invoke`` against ``stepflow local``):
tests/e2e/test_local_own_endpoints.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.integrations.catalog import default_registry, with_http
from stepflow.integrations.http_denied import DeniedEndpoints, endpoint_of
from stepflow.integrations.http_port import HttpProblem, HttpRequest, Urllib3Http
from stepflow.integrations.registry import IntegrationInvoker
from stepflow.runtime.clients import TaskClients

from tests.unit.http_target import HttpTarget, http_target


@pytest.fixture
def moto() -> Iterator[HttpTarget]:
    with http_target() as target:
        yield target


@pytest.fixture
def api() -> Iterator[HttpTarget]:
    with http_target() as target:
        yield target


def port_of(target: HttpTarget) -> int:
    return int(target.url.rsplit(":", 1)[1])


def hosts_of_loopback() -> list[str]:
    forms = ["127.0.0.1", "localhost", "LOCALHOST", "127.0.0.2", "127.1", "0.0.0.0", "2130706433"]
    forms += ["0x7f000001", "0177.0.0.1", "[::ffff:127.0.0.1]"]
    if socket.has_ipv6:
        forms += ["[::1]", "[::]"]
    return forms


@pytest.mark.parametrize("host", hosts_of_loopback())
def test_every_spelling_of_the_denied_host_is_refused_before_sending(
    moto: HttpTarget, host: str
) -> None:
    port = Urllib3Http(denied=DeniedEndpoints([moto.url]))
    request = HttpRequest("POST", f"http://{host}:{port_of(moto)}/", body=b"{}")
    with pytest.raises(HttpProblem) as refused:
        port.send(request)
    assert refused.value.kind == "invalid"
    assert "one of the stack's own AWS endpoints" in refused.value.message
    assert moto.received == []


def test_https_to_the_denied_port_is_refused_too(moto: HttpTarget) -> None:
    port = Urllib3Http(denied=DeniedEndpoints([moto.url]))
    with pytest.raises(HttpProblem, match="own AWS endpoints"):
        port.send(HttpRequest("GET", f"https://localhost:{port_of(moto)}/"))


def test_another_port_on_loopback_is_reached_once(moto: HttpTarget, api: HttpTarget) -> None:
    port = Urllib3Http(denied=DeniedEndpoints([moto.url]))
    response = port.send(HttpRequest("POST", f"http://localhost:{port_of(api)}/id_func", body=b"1"))
    assert (response.status, response.body) == (200, b"1")
    assert len(api.received) == 1
    assert moto.received == []


def test_a_redirect_to_the_denied_endpoint_comes_back_unfollowed(
    moto: HttpTarget, api: HttpTarget
) -> None:
    api.routes["away"] = lambda req: (302, [("Location", f"{moto.url}/id_func")], b"")
    port = Urllib3Http(denied=DeniedEndpoints([moto.url]))
    response = port.send(HttpRequest("GET", f"{api.url}/away"))
    assert (response.status, response.header("Location")) == (302, f"{moto.url}/id_func")
    assert moto.received == []


def test_a_name_resolving_to_the_denied_server_only_at_connection_is_refused_there(
    moto: HttpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check resolves rebind.test to a public address; the connection to loopback.
    denied = DeniedEndpoints(
        [moto.url],
        resolver=lambda host, port: ["203.0.113.7"] if host == "rebind.test" else ["127.0.0.1"],
    )
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert denied.refusal("rebind.test", port_of(moto)) is None
    port = Urllib3Http(denied=denied)
    with pytest.raises(HttpProblem, match="own AWS endpoints") as refused:
        port.send(HttpRequest("GET", f"http://rebind.test:{port_of(moto)}/id_func"))
    assert refused.value.kind == "invalid"
    assert moto.received == []


def test_without_a_deny_list_the_same_request_is_sent(moto: HttpTarget) -> None:
    response = Urllib3Http().send(HttpRequest("GET", f"http://localhost:{port_of(moto)}/landing"))
    assert response.status == 200
    assert len(moto.received) == 1


def test_endpoints_by_scheme_port_and_name() -> None:
    assert endpoint_of("http://Moto:5000/x") == ("moto", 5000)
    assert endpoint_of("https://example.com") == ("example.com", 443)
    assert endpoint_of("http://[::1]:4566") == ("::1", 4566)
    assert endpoint_of("ftp://x") is None
    assert endpoint_of("") is None
    denied = DeniedEndpoints(["http://localstack:4566"], resolver=lambda host, port: ["172.18.0.5"])
    assert denied.refusal("LocalStack", 4566) is not None
    assert denied.refusal("172.18.0.5", 4566) is not None
    assert denied.refusal("localstack", 4567) is None
    assert denied.refusal("203.0.113.9", 4566) is None


class NoClients:
    def for_task(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no AWS client is needed")


def test_http_invoke_through_the_registry_fails_with_states_runtime(moto: HttpTarget) -> None:
    registry = with_http(default_registry(), Urllib3Http(denied=DeniedEndpoints([moto.url])))
    clients: TaskClients = NoClients()  # type: ignore[assignment]
    invoker = IntegrationInvoker(registry, clients)
    outcome = invoker(
        {
            "resource": "arn:aws:states:::apigateway:invoke",
            "input": {"ApiEndpoint": f"localhost:{port_of(moto)}", "Method": "POST"},
        }
    )
    assert (outcome.ok, outcome.error) == (False, "States.Runtime")
    assert "one of the stack's own AWS endpoints" in (outcome.cause or "")
    assert moto.received == []
    assert default_registry().find("arn:aws:states:::http:invoke") is not registry.find(
        "arn:aws:states:::http:invoke"
    )
