"""The test gateway's own SigV4 verifier against AWS's published Signature Version 4 test suite.

The gateway (tests/e2e/sigv4_gateway.py) recomputes signatures by hand, not
with botocore, so a canonicalisation bug of the signer under test (botocore's
``SigV4Auth``, through :func:`stepflow.proxy.signing.sign_request`) fails the
e2e tests instead of being repeated by the verifier. These vectors pin the
verifier itself: AWS's example credentials, date and expected signatures.
"""

from __future__ import annotations

import hashlib

import pytest
from botocore.credentials import ReadOnlyCredentials
from stepflow.proxy.signing import sign_request

from tests.e2e.sigv4_gateway import canonical_request, refusal, signature

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
STAMP = "20150830T123600Z"
SCOPE = "20150830/us-east-1/service/aws4_request"
HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": STAMP}


@pytest.mark.parametrize(
    ("name", "method", "target", "expected"),
    [
        (
            "get-vanilla",
            "GET",
            "/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-utf8",
            "GET",
            "/\u1234",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
    ],
)
def test_the_verifier_computes_awss_documented_signatures(
    name: str, method: str, target: str, expected: str
) -> None:
    canonical = canonical_request(method, target, HEADERS, ["host", "x-amz-date"], b"")
    assert signature(SECRET, STAMP, SCOPE, canonical) == expected, name


def test_get_vanillas_canonical_request_is_the_documented_one() -> None:
    canonical = canonical_request("GET", "/", HEADERS, ["host", "x-amz-date"], b"")
    assert canonical == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    digest = "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    assert hashlib.sha256(canonical.encode()).hexdigest() == digest


def _signed(url: str) -> dict[str, str]:
    credentials = ReadOnlyCredentials("AKIDPROXY", "secret", None)
    headers = sign_request(credentials, "eu-west-1", "POST", url, {}, b"{}")
    return {**headers, "Host": "127.0.0.1:9"}


def test_the_proxys_signature_verifies_for_the_path_sent() -> None:
    headers = _signed("http://127.0.0.1:9/v1/")
    assert refusal("POST", "/v1/", headers, b"{}", {"AKIDPROXY": "secret"}, "eu-west-1") is None


def test_a_signature_of_another_path_than_the_one_sent_is_refused() -> None:
    # botocore signs the normalised path: /v1/../prod/ is signed as /prod/, a
    # request for another stage. Sent as it was signed, it must not verify.
    headers = _signed("http://127.0.0.1:9/v1/../prod/")
    why = refusal("POST", "/v1/../prod/", headers, b"{}", {"AKIDPROXY": "secret"}, "eu-west-1")
    assert why is not None and "does not match" in why
