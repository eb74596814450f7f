"""The package cache: a converge's apt traffic goes through it, a second download is served from it, no proxy stays.

A cache of its own (apt-cacher-ng under tmp_path, cold), so the converge must fetch and the second download must hit,
whatever the run's shared cache holds. The os_packages role installs jq (not in the base image) with
os_packages_apt_proxy set: apt-cacher-ng's transfer log must show jq's packages fetched from the mirror and served
once. Then apt downloads them again through the cache (apt-get download, as the next instance's converge would): served
again, not fetched. The instance must hold no proxy setting afterwards (apt gets the proxy in its environment only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge.bake.aptcache import AptCache, read_stats
from nodeforge.bake.hygiene import proxy_setting

pytestmark = pytest.mark.xdist_group("apt-cache")

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("jq", "libjq1", "libonig5")  # jq and what it pulls in on bookworm


def converge(instance: str, tmp_path: Path, proxy: str) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "apt_cache_play.yml"
    role_vars = {"os_packages_names": ["jq"], "os_packages_apt_proxy": proxy}
    playbook.write_text(
        json.dumps([{"name": "apt cache", "hosts": "all", "gather_facts": True,
                     "roles": [{"role": "os_packages", "vars": role_vars}]}])
    )  # fmt: skip
    ansible = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(
        [str(ansible), "-i", f"{instance},", "-c", "community.docker.docker",
         "-e", "ansible_python_interpreter=/usr/bin/python3", str(playbook)],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
        env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def sh(instance: str, script: str) -> str:
    proc = subprocess.run(["docker", "exec", instance, "sh", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{script}: {proc.stderr}"
    return proc.stdout


def package_lines(log: Path, offset: int, kind: str) -> dict[str, int]:
    """jq's packages in the transfer log after OFFSET: name -> number of KIND (O served, I fetched) lines."""
    counts = dict.fromkeys(PACKAGES, 0)
    for line in log.read_bytes()[offset:].decode(errors="replace").splitlines():
        parts = line.split("|", 4)
        if len(parts) == 5 and parts[1] == kind and parts[4].endswith(".deb"):
            name = parts[4].rsplit("/", 1)[-1].split("_", 1)[0]
            if name in counts:
                counts[name] += 1
    return counts


def test_converge_goes_through_the_cache_and_leaves_no_proxy(instance: str, tmp_path: Path) -> None:
    assert sh(instance, "dpkg-query -W -f '${Status}' jq 2>/dev/null || true") != "install ok installed"
    with AptCache(tmp_path / "acng") as cache:
        first = converge(instance, tmp_path, cache.url)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        assert sh(instance, "jq -n 1").strip() == "1"
        assert package_lines(cache.log_path, 0, "I") == dict.fromkeys(PACKAGES, 1), "first converge: fetched once"
        assert package_lines(cache.log_path, 0, "O") == dict.fromkeys(PACKAGES, 1), "first converge: served once"

        offset = cache.log_path.stat().st_size
        sh(instance, f"cd /var/tmp && http_proxy={cache.url} apt-get download -q {' '.join(PACKAGES)} && rm -f ./*.deb")
        assert package_lines(cache.log_path, offset, "O") == dict.fromkeys(PACKAGES, 1), "second download: served"
        assert package_lines(cache.log_path, offset, "I") == dict.fromkeys(PACKAGES, 0), "second download: a hit"
        stats = cache.stats()
        assert stats.packages_from_cache >= len(PACKAGES), stats
        lines = cache.log_path.read_text(errors="replace").splitlines()
        assert read_stats(lines).packages_fetched == stats.packages_fetched

        # Nothing of the proxy stays: apt's configuration, the environment and any file under /etc or /root.
        assert "proxy" not in sh(instance, "apt-config dump").lower()
        leftovers = sh(instance, f"grep -rlI -e '{cache.port}' /etc /root 2>/dev/null || true").split()
        for path in leftovers:
            text = sh(instance, f"cat {path}").encode()
            assert cache.url.encode() not in text and proxy_setting(path, text) is None, path
