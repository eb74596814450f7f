"""The test run's package cache: transfer log figures, start/stop on loopback, one run per cache dir, stale daemons."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from nodeforge.bake import aptcache
from nodeforge.bake.aptcache import AptCache, AptCacheError, read_stats

LOG = """\
1796014355|I|151287|127.0.0.1|deb.debian.org/debian/dists/bookworm/InRelease
1796014355|O|151293|127.0.0.1|deb.debian.org/debian/dists/bookworm/InRelease
1796014355|I|375436|127.0.0.1|deb.debian.org/debian/pool/main/s/socat/socat_1.7.4.4-2_amd64.deb
1796014355|O|375425|127.0.0.1|deb.debian.org/debian/pool/main/s/socat/socat_1.7.4.4-2_amd64.deb
1796014356|O|375425|127.0.0.1|deb.debian.org/debian/pool/main/s/socat/socat_1.7.4.4-2_amd64.deb
1796014357|O|64690|127.0.0.1|security.debian.org/debian-security/pool/updates/main/j/jq/jq_1.6-2.1+deb12u3_amd64.deb
1796014358|E|628|127.0.0.1|deb.debian.org/debian/pool/main/x/x/x_1_amd64.deb [HTTP error, code: 503]
not a log line
"""

needs_acng = pytest.mark.skipif(
    shutil.which(aptcache.BINARY) is None and not Path(f"/usr/sbin/{aptcache.BINARY}").exists(),
    reason="apt-cacher-ng not installed (scripts/setup.sh installs it)",
)


def test_read_stats_splits_hits_from_fetches():
    stats = read_stats(LOG.splitlines())
    assert (stats.served_files, stats.fetched_files, stats.errors) == (4, 2, 1)
    assert stats.served_bytes == 151293 + 2 * 375425 + 64690
    assert stats.fetched_bytes == 151287 + 375436
    # socat: served twice, fetched once -> one hit; jq: served, never fetched in these lines -> a hit
    assert (stats.packages_served, stats.packages_from_cache, stats.packages_fetched) == (3, 2, 1)
    assert stats.packages_from_cache_bytes == 375425 + 64690
    assert stats.packages_fetched_bytes == 375436
    assert "3 packages served, 2 from the cache" in stats.summary()
    assert read_stats([]).summary().startswith("0 packages served")


def test_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(aptcache, "BINARY", "apt-cacher-ng-not-here")
    with pytest.raises(AptCacheError, match="apt-cacher-ng-not-here is not installed"):
        AptCache(tmp_path).start()


@needs_acng
def test_serves_on_loopback_and_stops(tmp_path):
    with AptCache(tmp_path / "acng") as cache:
        assert cache.url.startswith("http://127.0.0.1:")
        # its own report page answers (no upstream needed)
        with urllib.request.urlopen(f"{cache.url}/acng-report.html", timeout=5) as response:
            assert response.status == 200
        assert (tmp_path / "acng" / "conf" / "acng.conf").read_text().count("Remap-") == 0
        port = cache.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(AptCacheError, match="not running"):
        _ = cache.url


@needs_acng
def test_one_run_per_cache_dir(tmp_path):
    with AptCache(tmp_path / "acng"), pytest.raises(AptCacheError, match=rf"in use by pid {os.getpid()}"):
        AptCache(tmp_path / "acng").start()


@needs_acng
def test_a_daemon_left_by_a_killed_run_is_ended(tmp_path):
    first = AptCache(tmp_path / "acng").start()
    assert first._proc is not None
    stale_pid = first._proc.pid
    # a killed run: its lock goes with it, its apt-cacher-ng stays
    assert first._lock is not None
    first._lock.close()
    first._lock = None
    with AptCache(tmp_path / "acng") as second:
        assert second.running
        first._proc.wait(timeout=10)  # ended by the second start
        assert not Path(f"/proc/{stale_pid}").exists() or first._proc.poll() is not None
