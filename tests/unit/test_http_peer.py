"""The HTTP port checks the address it connected to, whatever spelling led there.

Never a link-local address (instance metadata: 169.254.169.254, fd00:ec2::254,
an IPv4-mapped form), and never this machine unless loopback is allowed: the
deployed runner must not reach the Lambda runtime API on 127.0.0.1:9001 (it
hands out the next invocation's event). ``stepflow local`` and tests allow
loopback (users call local servers); the deployed wiring does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.integrations.http_port import HttpProblem, HttpRequest, Urllib3Http, peer_refusal

from tests.unit.http_target import HttpTarget, http_target


@pytest.fixture
def server() -> Iterator[HttpTarget]:
    with http_target() as target:
        yield target


@pytest.mark.parametrize(
    "peer",
    ["169.254.169.254", "169.254.170.2", "::ffff:169.254.169.254", "fe80::1", "fd00:ec2::254"],
)
def test_a_link_local_peer_is_refused_even_with_loopback_allowed(peer: str) -> None:
    assert peer_refusal(peer, allow_loopback=True) is not None


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::ffff:127.0.0.1"])
def test_this_machine_is_refused_unless_loopback_is_allowed(peer: str) -> None:
    assert peer_refusal(peer, allow_loopback=False) is not None
    assert peer_refusal(peer, allow_loopback=True) is None


def test_a_public_peer_is_fine() -> None:
    assert peer_refusal("93.184.216.34", allow_loopback=False) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1"])
def test_without_loopback_no_request_reaches_a_local_server(server: HttpTarget, host: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    http = Urllib3Http(allow_loopback=False)
    with pytest.raises(HttpProblem) as refused:
        http.send(HttpRequest("POST", f"http://{host}:{port}/id_func", body=b"{}"))
    assert refused.value.kind == "invalid"
    assert "an address of this machine" in refused.value.message
    assert server.received == []


def test_with_loopback_allowed_the_local_server_is_called_once(server: HttpTarget) -> None:
    response = Urllib3Http().send(HttpRequest("POST", f"{server.url}/id_func", body=b"{}"))
    assert response.status == 200
    assert len(server.received) == 1


def test_the_deployed_wiring_refuses_loopback_and_local_allows_it() -> None:
    env = {"TABLE_NAME": "t", "QUEUE_URL": "q", "STEPFLOW_SIGNING_KEY": "k" * 48}
    deployed = build(Settings.from_environ(env))
    local = build(Settings.from_environ(env), denied_endpoints=DeniedEndpoints([]))
    for wiring, allowed in ((deployed, False), (local, True)):
        for service in ("apigateway", "http"):
            integration = wiring.integrations.integrations[service]
            port = integration.http  # type: ignore[attr-defined]
            assert isinstance(port, Urllib3Http)
            assert port.allow_loopback is allowed
