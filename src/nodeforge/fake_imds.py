"""A fake EC2 instance metadata service (IMDSv2 semantics) on 127.0.0.1 for the bootstrap agent's tests."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Instance facts of nodeadm's e2e IMDS mock, so outputs compare with its expected files.
DEFAULT_METADATA = {
    "instance-id": "i-1234567890abcdef0",
    "instance-type": "m4.xlarge",
    "placement/availability-zone": "us-west-2f",
    "placement/region": "us-west-2",
    "local-ipv4": "172.16.34.43",
    "local-hostname": "ip-172-16-34-43.ec2.internal",
    "mac": "0e:49:61:0f:c3:11",
    "network/interfaces/macs/0e:49:61:0f:c3:11/ipv6s": "2600:1f14:abc:de00::1",
    "network/interfaces/macs/0e:49:61:0f:c3:11/vpc-ipv4-cidr-blocks": "172.16.0.0/16",
    "services/domain": "amazonaws.com",
}


@dataclass
class FakeImds:
    """State of the fake: metadata paths (under /latest/meta-data/), user data, issued tokens, request log."""

    metadata: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_METADATA))
    user_data: bytes | None = None
    tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with 503 first
    endpoint: str = ""


def _handler(state: FakeImds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as IMDS: the agent sends every request of a run on one connection
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall between them

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"") -> None:
            state.requests.append((self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            if state.fail_next:
                state.fail_next -= 1
                self._send(503)
                return
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if self.path != "/latest/api/token":
                self._send(404)
            elif not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                self._send(400)
            else:
                token = secrets.token_urlsafe(16)
                state.tokens.add(token)
                self._send(200, token.encode())

        def do_GET(self) -> None:
            if state.fail_next:
                state.fail_next -= 1
                self._send(503)
                return
            if self.headers.get("X-aws-ec2-metadata-token") not in state.tokens:
                self._send(401)
                return
            if self.path == "/latest/user-data":
                self._send(404) if state.user_data is None else self._send(200, state.user_data)
                return
            prefix = "/latest/meta-data/"
            key = self.path[len(prefix) :] if self.path.startswith(prefix) else None
            if key is not None and key in state.metadata:
                self._send(200, state.metadata[key].encode())
            else:
                self._send(404)

    return Handler


class FakeImdsServer:
    def __init__(self) -> None:
        self.state = FakeImds()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeImds:
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
