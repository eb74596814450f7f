"""A Debian package cache for the test run: apt-cacher-ng (from Debian) on 127.0.0.1, cache kept under .cache/.

Every Molecule instance and the local bake's Packer build install their packages from the same Debian mirror; with
this cache between them each package crosses the network once per machine (the cache dir outlives the run).
Instances use host networking, so the proxy URL (``http://127.0.0.1:PORT``) reaches the cache from inside them; the
roles take it as ``os_packages_apt_proxy`` and hand it to apt in its environment only, so no image keeps it.

One cache per cache dir at a time (a lock file): a second run on the same checkout, or one that finds
apt-cacher-ng missing, gets an ``AptCacheError`` naming why, and its caller goes on without the cache.

apt-cacher-ng's transfer log (``log/apt-cacher.log``) has one line per file: ``time|I|bytes|client|path`` for what
it fetched from the mirror, ``time|O|bytes|client|path`` for what it served to a client; ``stats()`` reads the lines
this run wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["AptCache", "AptCacheError", "CacheStats", "read_stats"]

BINARY = "apt-cacher-ng"
# No Remap- lines: Debian's acng.conf remaps deb.debian.org to a mirror list (ftp.debian.org first), and only the
# hosts the sources name are reachable here. Files are cached by the host and path the client asked for.
CONFIG = """\
# Written by nodeforge (src/nodeforge/bake/aptcache.py) for each start; the cache of the test run.
CacheDir: {cache}
LogDir: {log}
SupportDir: /usr/lib/apt-cacher-ng
ReportPage: acng-report.html
ExThreshold: 4
"""
PACKAGE_SUFFIXES = (".deb", ".udeb", ".rpm")


class AptCacheError(RuntimeError):
    """The cache could not start (missing binary, in use by another run, did not answer)."""


@dataclass
class CacheStats:
    """Files and bytes apt-cacher-ng served, split into what came from its cache and what it fetched first."""

    served_files: int = 0
    served_bytes: int = 0
    fetched_files: int = 0  # from the mirror (misses)
    fetched_bytes: int = 0
    packages_served: int = 0
    packages_from_cache: int = 0  # packages served without a fetch in this run (hits)
    packages_from_cache_bytes: int = 0
    packages_fetched: int = 0
    packages_fetched_bytes: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.packages_served} packages served, {self.packages_from_cache} from the cache "
            f"({self.packages_from_cache_bytes / 2**20:.1f} MiB), {self.packages_fetched} fetched from the mirror "
            f"({self.packages_fetched_bytes / 2**20:.1f} MiB); all files: {self.served_files} served "
            f"({self.served_bytes / 2**20:.1f} MiB), {self.fetched_files} fetched "
            f"({self.fetched_bytes / 2**20:.1f} MiB)" + (f", {self.errors} errors" if self.errors else "")
        )


def read_stats(lines: list[str]) -> CacheStats:
    """Figures from apt-cacher-ng transfer log lines (``time|kind|bytes|client|path``; other lines are skipped).

    A path served N times and fetched M times in these lines was served N - M times from the cache.
    """
    stats = CacheStats()
    served: Counter[str] = Counter()
    fetched: Counter[str] = Counter()
    fetched_bytes: Counter[str] = Counter()
    sizes: dict[str, int] = {}  # path -> bytes of its last serving
    for line in lines:
        parts = line.rstrip("\n").split("|", 4)
        if len(parts) != 5 or not parts[2].isdigit():
            continue
        _, kind, size_text, _, path = parts
        size = int(size_text)
        if kind == "O":
            stats.served_files += 1
            stats.served_bytes += size
            served[path] += 1
            sizes[path] = size
        elif kind == "I":
            stats.fetched_files += 1
            stats.fetched_bytes += size
            fetched[path] += 1
            fetched_bytes[path] += size
        elif kind == "E":
            stats.errors += 1
    for path, count in served.items():
        if path.endswith(PACKAGE_SUFFIXES):
            stats.packages_served += count
            hits = max(0, count - fetched[path])
            stats.packages_from_cache += hits
            stats.packages_from_cache_bytes += hits * sizes[path]
    for path, count in fetched.items():
        if path.endswith(PACKAGE_SUFFIXES):
            stats.packages_fetched += count
            stats.packages_fetched_bytes += fetched_bytes[path]
    return stats


# apt-cacher-ng 3.7.4 (bookworm) cannot bind a port above 32767 ("Error resolving address for binding: Success"),
# and the kernel's ephemeral range starts at 32768: pick a free port below it.
PORT_RANGE = range(20000, 32768)


def _free_port(host: str) -> int:
    for port in random.sample(PORT_RANGE, 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise AptCacheError(f"no free port for the apt cache on {host} in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class AptCache:
    """apt-cacher-ng on loopback over ROOT (cache/, log/, conf/, run/): ``with AptCache(root) as cache: cache.url``."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._log_offset = 0

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "apt-cacher.log"

    @property
    def url(self) -> str:
        if self._proc is None:
            raise AptCacheError("the apt cache is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15) -> Self:
        binary = shutil.which(BINARY) or (f"/usr/sbin/{BINARY}" if Path(f"/usr/sbin/{BINARY}").is_file() else None)
        if binary is None:
            raise AptCacheError(f"{BINARY} is not installed (scripts/setup.sh installs it from Debian)")
        for sub in ("cache", "log", "conf", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._stop_stale(self.root / "run" / "pid")
            conf = self.root / "conf"
            (conf / "acng.conf").write_text(CONFIG.format(cache=self.root / "cache", log=self.root / "log"))
            self.port = self.port or _free_port(self.host)
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            console = (self.root / "log" / "console.log").open("ab")
            cmd = [
                binary,
                "-c",
                str(conf),
                "ForeGround=1",
                f"BindAddress={self.host}",
                f"Port={self.port}",
                f"PidFile={self.root / 'run' / 'pid'}",
                f"SocketPath={self.root / 'run' / 'socket'}",
            ]
            # same process group as the caller: a run killed as a group takes its cache along (a lone survivor is
            # ended by the next start, _stop_stale)
            with console:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while not _answers(self.host, self.port):
                if self._proc.poll() is not None:
                    raise AptCacheError(
                        f"{BINARY} exited with {self._proc.returncode} on start; see {self.root / 'log'}"
                    )
                if time.monotonic() > deadline:
                    raise AptCacheError(f"{BINARY} did not answer on {self.host}:{self.port} within {timeout:.0f} s")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        handle = (self.root / "run" / "lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise AptCacheError(f"the apt cache in {self.root} is in use by {owner}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _stop_stale(self, pid_file: Path) -> None:
        """End an apt-cacher-ng a killed run left on this cache (we hold the lock: no live run owns it)."""
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if Path(cmdline[0].decode(errors="replace")).name == BINARY and str(self.root / "conf").encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def stats(self) -> CacheStats:
        """What this run's cache served and fetched so far (the log lines written since start)."""
        if not self.log_path.exists():
            return CacheStats()
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            text = handle.read().decode(errors="replace")
        return read_stats(text.splitlines())

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
