"""IMDSv2 client: a session token (PUT), then GETs carrying it; retries with backoff; no proxies."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

from nodeforge.bootstrap.errors import ImdsError
from nodeforge.bootstrap.record import dataclass

DEFAULT_ENDPOINT = "http://169.254.169.254"
ENDPOINT_ENV = "NODEFORGE_IMDS_ENDPOINT"
SDK_ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
TOKEN_TTL_SECONDS = 21600
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def resolve_endpoint(option: str | None) -> str:
    """The endpoint from the option, else $NODEFORGE_IMDS_ENDPOINT, else the SDKs' variable, else the link-local one."""
    endpoint = option or os.environ.get(ENDPOINT_ENV) or os.environ.get(SDK_ENDPOINT_ENV) or DEFAULT_ENDPOINT
    return endpoint.rstrip("/")


@dataclass
class ImdsClient:
    """Minimal IMDSv2 client. ``get`` returns None for a path IMDS does not have (404)."""

    endpoint: str = DEFAULT_ENDPOINT
    attempts: int = 5
    backoff: float = 0.2
    timeout: float = 2.0

    def __post_init__(self) -> None:
        self._token: str | None = None
        # IMDS is link-local: never go through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        url = f"{self.endpoint}/{path.lstrip('/')}"
        last: str = ""
        for attempt in range(max(1, self.attempts)):
            if attempt:
                time.sleep(min(self.backoff * (2 ** (attempt - 1)), 5.0))
            request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - http by design
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRYABLE_STATUS:
                    return exc.code, exc.read()
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = str(reason)
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
