"""The IMDSv2 client against the fake: token first, token on every GET, retries, 401 refresh."""

from __future__ import annotations

import urllib.request

import pytest

from nodeforge.bootstrap.errors import ImdsError
from nodeforge.bootstrap.imds import ENDPOINT_ENV, ImdsClient, resolve_endpoint


def test_fake_imds_enforces_v2(imds):
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        urllib.request.urlopen(f"{imds.endpoint}/latest/meta-data/instance-id", timeout=2)
    assert unauthorized.value.code == 401
    request = urllib.request.Request(f"{imds.endpoint}/latest/api/token", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as no_ttl:
        urllib.request.urlopen(request, timeout=2)
    assert no_ttl.value.code == 400


def test_client_reads_with_a_session_token(imds):
    imds.user_data = b"hello"
    client = ImdsClient(imds.endpoint)
    assert client.require("instance-id") == "i-1234567890abcdef0"
    assert client.user_data() == b"hello"
    assert client.get("no/such/path") is None
    methods = [method for method, _, _ in imds.requests]
    assert methods.count("PUT") == 1
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token")


def test_client_retries_server_errors(imds):
    imds.fail_next = 2
    client = ImdsClient(imds.endpoint, attempts=3, backoff=0.01)
    assert client.require("instance-type") == "m4.xlarge"
    assert [status for _, _, status in imds.requests[:2]] == [503, 503]


def test_client_gives_up_after_the_attempts(imds):
    imds.fail_next = 5
    client = ImdsClient(imds.endpoint, attempts=2, backoff=0.01)
    with pytest.raises(ImdsError, match="unreachable after 2 attempt"):
        client.require("instance-type")


def test_client_refreshes_a_revoked_token(imds):
    client = ImdsClient(imds.endpoint)
    client.require("instance-id")
    imds.tokens.clear()
    assert client.require("instance-id") == "i-1234567890abcdef0"
    assert [method for method, _, _ in imds.requests].count("PUT") == 2


def test_endpoint_resolution(monkeypatch):
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", raising=False)
    assert resolve_endpoint(None) == "http://169.254.169.254"
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:1234/")
    assert resolve_endpoint(None) == "http://127.0.0.1:1234"
    assert resolve_endpoint("http://127.0.0.1:99") == "http://127.0.0.1:99"
