"""A fake EC2 instance metadata service (IMDSv2 semantics) on 127.0.0.1: the agent's tests and booted VMs."""

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


# Metadata API versions the service answers besides "latest" (cloud-init's Ec2 datasource probes these).
API_VERSIONS = ("1.0", "2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23")


@dataclass
class FakeImds:
    """State of the fake: metadata paths (under /latest/meta-data/), user data, issued tokens, request log.

    Paths are answered under ``/latest/`` and every version in :data:`API_VERSIONS`; a path ending in ``/`` lists
    its children as EC2 does (``name/`` for a folder). ``public_keys`` appear as ``public-keys/0=NAME`` and
    ``public-keys/0/openssh-key``; ``dynamic/instance-identity/document`` is built from the metadata.
    ``tokens_disabled`` refuses the IMDSv2 token PUT (403) and answers GETs without a token: an IMDSv1-only
    service. ``require_token`` False accepts tokenless GETs as well (IMDSv2 optional).
    """

    metadata: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_METADATA))
    user_data: bytes | None = None
    tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with 503 first
    endpoint: str = ""
    public_keys: dict[str, str] = field(default_factory=dict)
    tokens_disabled: bool = False
    require_token: bool = True
    unreachable: bool = False
    """Drop every connection unanswered (a launch with ``--imds unreachable`` has no route to the service at all)."""

    def tree(self) -> dict[str, str]:
        """Every leaf path under meta-data/ (metadata plus the public keys) with its value."""
        leaves = dict(self.metadata)
        for index, (name, key) in enumerate(self.public_keys.items()):
            leaves[f"public-keys/{index}/openssh-key"] = key
            leaves[f"public-keys/{index}/_name"] = name
        return leaves

    def identity_document(self) -> str:
        import json

        md = self.metadata
        zone = md.get("placement/availability-zone", "")
        doc = {
            "accountId": md.get("identity-credentials/ec2/info/account-id", "123456789012"),
            "architecture": md.get("_architecture", "x86_64"),
            "availabilityZone": zone,
            "imageId": md.get("ami-id", "ami-0123456789abcdef0"),
            "instanceId": md.get("instance-id", ""),
            "instanceType": md.get("instance-type", ""),
            "privateIp": md.get("local-ipv4", ""),
            "region": md.get("placement/region", zone[:-1]),
            "version": "2017-09-30",
        }
        return json.dumps(doc, indent=2)


def _listing(tree: dict[str, str], folder: str) -> bytes | None:
    """EC2's listing of FOLDER ('' or 'a/b/'): children one a line, folders with a trailing '/'."""
    names: list[str] = []
    for path in sorted(tree):
        if not path.startswith(folder) or path == folder:
            continue
        rest = path[len(folder) :]
        head, sep, _ = rest.partition("/")
        if head.startswith("_"):
            continue
        entry = head + ("/" if sep else "")
        if folder == "public-keys/" and sep:
            entry = f"{head}={tree.get(f'public-keys/{head}/_name', 'key')}"
        if entry not in names:
            names.append(entry)
    return "\n".join(names).encode() if names else None


def _handler(state: FakeImds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as IMDS: the agent sends every request of a run on one connection
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall between them

        def log_message(self, format: str, *args: object) -> None:
            pass

        def handle(self) -> None:
            if state.unreachable:
                state.requests.append(("-", "-", 0))
                return  # the connection closes unanswered
            super().handle()

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
            elif state.tokens_disabled:
                self._send(403)
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
            token = self.headers.get("X-aws-ec2-metadata-token")
            if token is None and state.require_token and not state.tokens_disabled:
                self._send(401)
                return
            if token is not None and token not in state.tokens:
                self._send(401)
                return
            if self.path in ("/", ""):
                self._send(200, "\n".join([*API_VERSIONS, "latest"]).encode())
                return
            version, _, rest = self.path.lstrip("/").partition("/")
            if version != "latest" and version not in API_VERSIONS:
                self._send(404)
                return
            if rest == "user-data":
                self._send(404) if state.user_data is None else self._send(200, state.user_data)
                return
            if rest in ("", "/"):
                self._send(200, b"dynamic\nmeta-data\n" + (b"user-data" if state.user_data is not None else b""))
                return
            if rest == "dynamic/instance-identity/document":
                self._send(200, state.identity_document().encode())
                return
            if rest in ("dynamic", "dynamic/"):
                self._send(200, b"instance-identity/")
                return
            if rest in ("dynamic/instance-identity", "dynamic/instance-identity/"):
                self._send(200, b"document")  # no signatures: nothing here can sign as AWS does
                return
            prefix = "meta-data/"
            if not rest.startswith(prefix) and rest != "meta-data":
                self._send(404)
                return
            key = rest[len(prefix) :]
            tree = state.tree()
            if key in tree and not key.rsplit("/", 1)[-1].startswith("_"):
                self._send(200, tree[key].encode())
                return
            folder = key if key.endswith("/") or key == "" else key + "/"
            listing = _listing(tree, folder)
            if listing is None:
                self._send(404)
            else:
                self._send(200, listing)

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
