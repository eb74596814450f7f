"""An artifact mirror on 127.0.0.1 that injects faults into artifact downloads (never into .sha256 files)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class MirrorLog:
    """What a faulty mirror saw: the paths asked for, and (fault 'hang') that half a body went out and how much."""

    requests: list[str] = field(default_factory=list)
    partial_sent: threading.Event = field(default_factory=threading.Event)
    partial_bytes: int = 0


@contextmanager
def faulty_mirror(
    root: Path, fault: str, *, failures: int = 1_000_000, log: MirrorLog | None = None, hang_seconds: float = 600
) -> Iterator[str]:
    """Serve ROOT; the first FAILURES artifact requests get FAULT: 'http500', 'truncate', 'stall' or 'hang'.

    'hang' sends the headers and half the body, then holds the connection open (until HANG_SECONDS pass or the mirror
    stops, which closes it short): a download caught in the middle, for as long as a test needs to interrupt it.
    """
    state = {"left": failures}
    seen = log if log is not None else MirrorLog()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.requests.append(self.path)
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            if not self.path.endswith(".sha256") and state["left"] > 0:
                state["left"] -= 1
                if fault == "http500":
                    self.send_error(500, "injected fault")
                    return
                if fault == "stall":
                    time.sleep(8)
                    return
                if fault == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "hang":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    seen.partial_bytes = len(data) // 2
                    seen.partial_sent.set()
                    release.wait(hang_seconds)
                    self.close_connection = True
                    return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
