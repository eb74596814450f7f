"""The IMDSv2 client against the fake: token first, token on every GET, retries, 401 refresh."""

from __future__ import annotations

import socket
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


def test_endpoint_split_handles_ipv6_and_refuses_what_is_not_http():
    from nodeforge.bootstrap.imds import split_endpoint

    assert split_endpoint("http://169.254.169.254") == ("169.254.169.254", 80)
    assert split_endpoint("http://[fd00:ec2::254]") == ("fd00:ec2::254", 80)
    assert split_endpoint("http://[fd00:ec2::254]:8080/") == ("fd00:ec2::254", 8080)
    assert split_endpoint("http://127.0.0.1:1338") == ("127.0.0.1", 1338)
    for bad in ("https://169.254.169.254", "169.254.169.254", "http://:80", "http://h:99999", "http://[::1"):
        with pytest.raises(ValueError):
            split_endpoint(bad)


def _responses(raw: bytes) -> list[tuple[int, bytes, bool]]:
    from nodeforge.bootstrap.imds import _Reader, read_response

    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    reader = _Reader(ours)
    found = []
    try:
        while True:
            found.append(read_response(reader))
            if not found[-1][2]:
                break
    finally:
        ours.close()
    return found


def test_responses_by_length_chunks_and_connection_close_on_one_connection():
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    )
    assert _responses(raw) == [
        (200, b"hello", True),
        (404, b"", True),
        (200, b"abcde", True),
        (200, b"until the end", False),
    ]


def test_truncated_or_foreign_responses_are_errors():
    with pytest.raises(ValueError, match="shorter than its Content-Length"):
        _responses(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(ValueError, match="not an HTTP response"):
        _responses(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(ValueError, match="closed in the middle"):
        _responses(b"HTTP/1.1 200 OK\r\nContent-")


def test_one_connection_for_every_request_and_a_new_one_when_the_server_drops_it(imds):
    client = ImdsClient(imds.endpoint)
    assert client.require("instance-id") == "i-1234567890abcdef0"
    first = client._reader
    assert client.require("instance-type") == "m4.xlarge"
    assert client._reader is first  # kept alive
    first.connection.close()  # as if the server had dropped the idle connection
    client._reader.connection = socket.socket()  # an unconnected socket: sendall fails
    assert client.require("local-ipv4") == "172.16.34.43"
    assert client._reader is not first
    client.close()
    assert client._reader is None
