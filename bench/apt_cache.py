"""Package cache benchmark: a whole-node Molecule scenario without the cache, with a cold one, then with it warm.

For each run: wall time of `molecule test -s SCENARIO`, and what apt-cacher-ng served (packages from its cache,
packages fetched from the mirror, bytes). The cold run starts from an empty cache dir (a new machine, as CI's); the
warm one reuses it (a re-run on the same machine). Prints the figures; asserts nothing.

--download-only times just the part the cache changes, in a container of the base image: `apt-get update` and
`apt-get install --download-only` (without recommends) of every package the node's roles install (their
vars/Debian.yml), direct, through a cold cache and through the same cache warm.

Run: .venv/bin/python bench/apt_cache.py [--scenario default] [--runs direct,cold,warm] [--cache-dir DIR]
     .venv/bin/python bench/apt_cache.py --download-only
(one scenario at a time: its instance is nodeforge-SCENARIO).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodeforge.bake.aptcache import AptCache

REPO = Path(__file__).resolve().parents[1]
RUNS = ("direct", "cold", "warm")


def molecule_test(scenario: str, proxy: str, log: Path) -> tuple[float, int]:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        NODEFORGE_APT_PROXY=proxy,
        PY_COLORS="0",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
    )
    started = time.monotonic()
    with log.open("w") as handle:
        proc = subprocess.run(
            ["molecule", "test", "-s", scenario], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    return time.monotonic() - started, proc.returncode


# The packages a whole node installs through os_packages: role -> its variables naming them (vars/Debian.yml).
NODE_PACKAGE_VARS = {
    "node_base": ("node_base_os_packages",),
    "containerd": ("containerd_os_packages", "containerd_os_cni_packages"),
    "bootstrap_agent": ("bootstrap_agent_os_packages",),
    "cloud_init": ("cloud_init_os_packages", "cloud_init_ssh_packages"),
    "hardening": ("hardening_auditd_package",),
}


def node_packages() -> list[str]:
    import yaml

    names: list[str] = []
    for role, variables in NODE_PACKAGE_VARS.items():
        data = yaml.safe_load((REPO / "roles" / role / "vars" / "Debian.yml").read_text())
        for variable in variables:
            value = data[variable]
            names += [value] if isinstance(value, str) else list(value)
    return sorted(set(names))


def download_only(proxy: str, packages: list[str]) -> dict[str, float]:
    """apt-get update, then install --download-only of PACKAGES, in a fresh container of the base image."""
    from nodeforge.bake.base import BaseSpec

    env = ["-e", f"http_proxy={proxy}"] if proxy else []
    script = (
        "set -e; t0=$(date +%s.%N); apt-get update -qq; t1=$(date +%s.%N); "
        f"apt-get install -y -qq --no-install-recommends --download-only {' '.join(packages)} >/dev/null; "
        't2=$(date +%s.%N); echo "$t0 $t1 $t2"; du -sb /var/cache/apt/archives | cut -f1'
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", *env, BaseSpec().tag, "sh", "-c", script],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"download-only run failed: {proc.stderr[-2000:]}")
    lines = proc.stdout.split()
    t0, t1, t2, size = float(lines[0]), float(lines[1]), float(lines[2]), int(lines[3])
    return {"apt-get update (s)": round(t1 - t0, 1), "download (s)": round(t2 - t1, 1),
            "packages (MiB)": round(size / 2**20, 1)}  # fmt: skip


def bench_download_only(cache_root: Path) -> dict[str, object]:
    packages = node_packages()
    figures: dict[str, object] = {"packages asked for": packages}
    figures["direct"] = download_only("", packages)
    print(f"direct: {json.dumps(figures['direct'])}", file=sys.stderr, flush=True)
    for run in ("cold", "warm"):
        with AptCache(cache_root) as cache:
            result: dict[str, object] = dict(download_only(cache.url, packages))
            stats = cache.stats()
        result["packages from cache"] = stats.packages_from_cache
        result["packages fetched from mirror"] = stats.packages_fetched
        result["fetched (MiB)"] = round(stats.fetched_bytes / 2**20, 1)
        figures[run] = result
        print(f"{run}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated, in order: direct, cold, warm")
    parser.add_argument("--cache-dir", type=Path, help="cache dir for the cold and warm runs (default a new temp dir)")
    parser.add_argument("--log-dir", type=Path, help="where the molecule logs go (default a new temp dir)")
    parser.add_argument("--download-only", action="store_true", help="time only apt's index refresh and downloads")
    args = parser.parse_args()
    if args.download_only:
        root = args.cache_dir or Path(tempfile.mkdtemp(prefix="nodeforge-apt-cache-"))
        if any((root / "cache").glob("*")):
            parser.error(f"--download-only needs an empty cache dir; {root / 'cache'} has files")
        figures = bench_download_only(root)
        figures["load average (1, 5, 15 min)"] = os.getloadavg()
        print(json.dumps(figures, indent=2))
        return
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    unknown = [run for run in runs if run not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {unknown} (known: {', '.join(RUNS)})")
    cache_root = args.cache_dir or Path(tempfile.mkdtemp(prefix="nodeforge-apt-cache-"))
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="nodeforge-apt-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {"scenario": args.scenario, "cache dir": str(cache_root), "logs": str(log_dir)}
    seconds_of: dict[str, float] = {}
    for run in runs:
        log = log_dir / f"molecule-{args.scenario}-{run}.log"
        if run == "direct":
            seconds, rc = molecule_test(args.scenario, "", log)
            seconds_of[run] = seconds
            figures[run] = {"seconds": round(seconds, 1), "exit": rc}
            print(f"{run}: {json.dumps(figures[run])}", file=sys.stderr, flush=True)
            continue
        if run == "cold" and any((cache_root / "cache").glob("*")):
            parser.error(f"--runs cold needs an empty cache dir; {cache_root / 'cache'} has files")
        with AptCache(cache_root) as cache:
            seconds, rc = molecule_test(args.scenario, cache.url, log)
            stats = cache.stats()
        seconds_of[run] = seconds
        figures[run] = {
            "seconds": round(seconds, 1),
            "exit": rc,
            "packages from cache": stats.packages_from_cache,
            "packages from cache (MiB)": round(stats.packages_from_cache_bytes / 2**20, 1),
            "packages fetched from mirror": stats.packages_fetched,
            "packages fetched (MiB)": round(stats.packages_fetched_bytes / 2**20, 1),
            "all files served (MiB)": round(stats.served_bytes / 2**20, 1),
            "all files fetched (MiB)": round(stats.fetched_bytes / 2**20, 1),
            "errors": stats.errors,
        }
        print(f"{run}: {json.dumps(figures[run])}", file=sys.stderr, flush=True)
    for run in ("cold", "warm"):
        if run in seconds_of and "direct" in seconds_of:
            figures[f"{run} / direct time"] = round(seconds_of[run] / seconds_of["direct"], 2)
    figures["load average (1, 5, 15 min)"] = os.getloadavg()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
