"""IMDSv2 client: a session token (PUT), then GETs carrying it; retries with backoff; no proxies.

IMDS is plain HTTP on a link-local address, so requests go over a socket here (HTTP/1.1, one connection kept
alive for every request of a run) rather than through urllib, whose import (http.client, email, ssl) costs more
at boot than the rest of a run. The socket is the C module's (``_socket``, what :mod:`socket` wraps): socket.py's
enum conversions and selectors import would be most of the client's cost.
"""

from __future__ import annotations

import os
import time

try:
    import _socket as socket_module
except ImportError:  # pragma: no cover - CPython always has _socket
    import socket as socket_module  # type: ignore[no-redef]

from nodeforge.bootstrap.errors import ImdsError
from nodeforge.bootstrap.record import dataclass

DEFAULT_ENDPOINT = "http://169.254.169.254"
ENDPOINT_ENV = "NODEFORGE_IMDS_ENDPOINT"
SDK_ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
TOKEN_TTL_SECONDS = 21600
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RESPONSE = 64 * 1024 * 1024  # user data is at most 16 KiB; metadata values are small


def resolve_endpoint(option: str | None) -> str:
    """The endpoint from the option, else $NODEFORGE_IMDS_ENDPOINT, else the SDKs' variable, else the link-local one."""
    endpoint = option or os.environ.get(ENDPOINT_ENV) or os.environ.get(SDK_ENDPOINT_ENV) or DEFAULT_ENDPOINT
    return endpoint.rstrip("/")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Host and port of an ``http://host[:port]`` endpoint (``http://[fd00:ec2::254]`` for IPv6); ValueError else."""
    scheme, separator, rest = endpoint.partition("://")
    if not separator or scheme.lower() != "http":
        raise ValueError(f"the IMDS endpoint must be an http:// URL, not {endpoint!r}")
    authority = rest.split("/", 1)[0]
    port = 80
    if authority.startswith("["):
        host, bracket, tail = authority[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"malformed IMDS endpoint {endpoint!r}")
        port_text = tail[1:]
    else:
        host, _, port_text = authority.partition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"malformed port in the IMDS endpoint {endpoint!r}")
        port = int(port_text)
    if not host:
        raise ValueError(f"no host in the IMDS endpoint {endpoint!r}")
    return host, port


class _Reader:
    """Reads one HTTP/1.x response at a time off a connection (status, headers, body by length or chunks)."""

    def __init__(self, connection: socket_module.socket) -> None:
        self.connection = connection
        self.buffer = b""
        self.size = 0

    def _fill(self) -> bool:
        chunk = self.connection.recv(65536)
        self.size += len(chunk)
        if self.size > _MAX_RESPONSE:
            raise ValueError("IMDS response too large")
        self.buffer += chunk
        return bool(chunk)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise ValueError("connection closed in the middle of an HTTP response")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise ValueError("HTTP response shorter than its Content-Length")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def rest(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def read_response(reader: _Reader) -> tuple[int, bytes, bool]:
    """Status, body and whether the connection stays open, for the next response on ``reader``."""
    lines = reader.until(b"\r\n\r\n").decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = parts[0] != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        payload = []
        while True:
            size = int(reader.until(b"\r\n").split(b";", 1)[0], 16)
            if size == 0:
                reader.until(b"\r\n")  # no trailers from IMDS: the empty line ending the body
                return int(parts[1]), b"".join(payload), keep
            payload.append(reader.exactly(size))
            reader.exactly(2)
    length = headers.get("content-length")
    if length is None:
        return int(parts[1]), reader.rest(), False
    if not length.isdigit():
        raise ValueError(f"bad Content-Length {length!r}")
    return int(parts[1]), reader.exactly(int(length)), keep


def _connect(host: str, port: int, timeout: float) -> socket_module.socket:
    """A connected TCP socket to host:port (each address getaddrinfo gives, in order), as socket.create_connection."""
    try:
        name: str | bytes = host.encode("ascii")  # bytes: no idna codec to import
    except UnicodeEncodeError:
        name = host
    last: OSError | None = None
    for family, kind, protocol, _, address in socket_module.getaddrinfo(name, port, 0, socket_module.SOCK_STREAM):
        connection = socket_module.socket(family, kind, protocol)
        try:
            connection.settimeout(timeout)
            connection.connect(address)
        except OSError as exc:
            connection.close()
            last = exc
            continue
        return connection
    raise last or OSError(f"no address for {host}")


@dataclass
class ImdsClient:
    """Minimal IMDSv2 client. ``get`` returns None for a path IMDS does not have (404)."""

    endpoint: str = DEFAULT_ENDPOINT
    attempts: int = 5
    backoff: float = 0.2
    timeout: float = 2.0

    def __post_init__(self) -> None:
        self._token: str | None = None
        self._reader: _Reader | None = None

    def close(self) -> None:
        """Close the kept-alive connection, if any (the next request opens a new one)."""
        if self._reader is not None:
            self._reader.connection.close()
            self._reader = None

    def _exchange(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request on the kept-alive connection (a new one when there is none, or when the server closed an
        idle one, as it may at any time)."""
        host, port = split_endpoint(self.endpoint)
        host_header = f"[{host}]" if ":" in host else host
        lines = [f"{method} /{path.lstrip('/')} HTTP/1.1", f"Host: {host_header}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if method == "PUT":
            lines.append("Content-Length: 0")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        reused = self._reader is not None
        if self._reader is None:
            self._reader = _Reader(_connect(host, port, self.timeout))
        try:
            self._reader.connection.sendall(request)
            self._reader.size = 0
            status, body, keep = read_response(self._reader)
        except (OSError, ValueError):
            self.close()
            if reused:
                return self._exchange(method, path, headers)
            raise
        if not keep:
            self.close()
        return status, body

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            split_endpoint(self.endpoint)
        except ValueError as exc:
            raise ImdsError(str(exc), [f"set --imds-endpoint or ${ENDPOINT_ENV} to an http:// URL"]) from None
        last: str = ""
        for attempt in range(max(1, self.attempts)):
            if attempt:
                time.sleep(min(self.backoff * (2 ** (attempt - 1)), 5.0))
            try:
                status, body = self._exchange(method, path, headers)
            except (OSError, ValueError) as exc:
                last = str(exc) or type(exc).__name__
                continue
            if status not in _RETRYABLE_STATUS:
                return status, body
            last = f"HTTP {status}"
        raise ImdsError(
            f"instance metadata service at {self.endpoint} unreachable after {max(1, self.attempts)} attempt(s)",
            [
                f"{method} /{path.lstrip('/')}: {last}",
                f"set --imds-endpoint or ${ENDPOINT_ENV} to use another endpoint",
            ],
        )

    def token(self) -> str:
        if self._token is None:
            status, body = self._request(
                "PUT", "latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)}
            )
            if status != 200:
                raise ImdsError(f"IMDSv2 token request at {self.endpoint} answered HTTP {status}")
            self._token = body.decode().strip()
        return self._token

    def get_bytes(self, path: str) -> bytes | None:
        for _ in range(2):
            status, body = self._request("GET", path, {"X-aws-ec2-metadata-token": self.token()})
            if status == 200:
                return body
            if status == 404:
                return None
            if status == 401:
                self._token = None  # expired or revoked: fetch a new token once
                continue
            raise ImdsError(f"IMDS GET /{path.lstrip('/')} answered HTTP {status}")
        raise ImdsError(f"IMDS GET /{path.lstrip('/')} refused the session token (HTTP 401)")

    def get(self, path: str) -> str | None:
        body = self.get_bytes(f"latest/meta-data/{path}")
        return None if body is None else body.decode().strip()

    def require(self, path: str) -> str:
        value = self.get(path)
        if not value:
            raise ImdsError(f"IMDS has no value at /latest/meta-data/{path}")
        return value

    def user_data(self) -> bytes | None:
        return self.get_bytes("latest/user-data")
