"""Catalog benchmark: ingest rate, the longest write transaction, and `latest` latency for hits and misses at 1k,
30k and 100k images; every read command as a process, as a ratio to `python -c pass` measured in the same loop;
and the same `latest` question answered by a describe_images tag-filter scan (and an SSM parameter read) on
moto_server holding 1k images.

Prints the figures; asserts nothing. Run: .venv/bin/python bench/catalog.py [--sizes 1000,30000] [--no-moto]
[--no-process]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeforge.catalog import synthetic
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.manifest import read_manifest
from nodeforge.catalog.motoserver import MotoServer
from nodeforge.catalog.publish import publish
from nodeforge.catalog.store import Catalog, ImageFilter
from nodeforge.catalog.tags import image_tags

CHANNEL = "candidate"


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    """Median and p95 of ``runs`` calls, in milliseconds."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3),
    }


# Regions no synthetic image was copied to: `latest` there is a miss after walking nothing (or, before the
# offers table, after walking the whole version/os/arch/channel slice).
MISS_REGIONS = ("eu-central-1", "sa-east-1", "ap-northeast-1")


def random_query(rng: random.Random, regions: tuple[str, ...] = synthetic.REGIONS) -> dict[str, str]:
    return {
        "kubernetes_version": rng.choice(synthetic.VERSIONS),
        "os": rng.choice(synthetic.OSES),
        "arch": rng.choice(synthetic.ARCHES),
        "region": rng.choice(regions),
        "channel": CHANNEL,
    }


def bench_sqlite(size: int, work: Path, queries: int) -> dict[str, Any]:
    manifest = synthetic.write(work / f"manifest-{size}.json", synthetic.many(size, seed=size))
    db = work / f"catalog-{size}.db"
    started = time.perf_counter()
    images = read_manifest(manifest)
    parsed = time.perf_counter()
    with Catalog.open(db) as catalog:
        result = catalog.ingest(images, source=str(manifest))
        ingested = time.perf_counter()
        again = catalog.ingest(read_manifest(manifest))
        reingested = time.perf_counter()
        rng = random.Random(size)
        hits = [random_query(rng) for _ in range(queries)]
        misses = [random_query(rng, MISS_REGIONS) for _ in range(queries)]
        found = sum(catalog.latest(**query) is not None for query in hits)
        missed = sum(catalog.latest(**query) is None for query in misses)
        hit_cursor, miss_cursor = iter(hits * 2), iter(misses * 2)
        hit_latency = timed(lambda: catalog.latest(**next(hit_cursor)), queries)
        miss_latency = timed(lambda: catalog.latest(**next(miss_cursor)), queries)
    return {
        "images": size,
        "manifest_mb": round(manifest.stat().st_size / 1e6, 1),
        "parse_s": round(parsed - started, 2),
        "write_s": round(ingested - parsed, 2),
        "ingest_images_per_s": round(len(result.new) / (ingested - started)),
        "write_transactions": getattr(result, "transactions", 1),
        "longest_transaction_s": round(getattr(result, "longest_transaction_s", ingested - parsed), 2),
        "reingest_s (0 new)": round(reingested - ingested, 2),
        "reingest_new": len(again.new),
        "latest_hit": hit_latency,
        "latest_miss": miss_latency,
        "latest_answered": f"{found}/{queries} hits, {missed}/{queries} misses",
        "db_mb": round(db.stat().st_size / 1e6, 1),
    }


def bench_processes(db: Path, runs: int, module: str = "nodeforge") -> dict[str, Any]:
    """Each read command as a process (`python -m nodeforge catalog ...`, the console script's path) against
    `python -c pass`, interleaved in one loop so that machine load hits both alike; medians and their ratio."""
    with Catalog.open(db, create=False) as catalog:
        image = catalog.list(ImageFilter(limit=2))
        query = image[0]
    ref, other = image[0].id, image[1].id
    region = query.artifacts[0].region
    select = ["-k", query.kubernetes_version, "--os", query.os, "--arch", query.arch, "--channel", CHANNEL]
    commands = {
        "latest (hit)": ["latest", *select, "--region", region],
        "latest (miss)": ["latest", *select, "--region", MISS_REGIONS[0]],
        "latest -o json": ["latest", *select, "--region", region, "-o", "json"],
        "list --limit 20": ["list", "--limit", "20"],
        "show": ["show", ref],
        "diff": ["diff", ref, other],
        "history --limit 20": ["history", "--limit", "20"],
        "export karpenter": ["export", "karpenter", *select, "--region", region],
        "export eksctl": ["export", "eksctl", *select, "--region", region, "--cluster", "bench"],
    }
    # As installed packages are: with bytecode (this machine sets PYTHONDONTWRITEBYTECODE; reading .pyc still works).
    import compileall

    import nodeforge

    compileall.compile_dir(str(Path(nodeforge.__file__).parent), quiet=1)
    base = [sys.executable, "-c", "pass"]
    samples: dict[str, list[float]] = {"python -c pass": [], **{name: [] for name in commands}}
    env = {**os.environ, "NODEFORGE_CATALOG": str(db)}
    for _ in range(runs):
        for name, argv in (("python -c pass", base), *commands.items()):
            prefix = ["catalog"] if module == "nodeforge" else []  # --module nodeforge.catalog: the app on its own
            cmd = argv if name == "python -c pass" else [sys.executable, "-m", module, *prefix, *argv]
            started = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, check=False)
            samples[name].append((time.perf_counter() - started) * 1000)
            if done.returncode not in (0, 3):
                raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr.decode()[-500:]}")
    baseline = statistics.median(samples["python -c pass"])
    return {
        "python_c_pass_ms": round(baseline, 1),
        "commands": {
            name: {
                "median_ms": round(statistics.median(times), 1),
                "ratio": round(statistics.median(times) / baseline, 2),
            }
            for name, times in samples.items()
            if name != "python -c pass"
        },
    }


def bench_moto(size: int, work: Path, runs: int) -> dict[str, Any]:
    with MotoServer() as server:
        os.environ.update(server.env())
        aws = AwsContext(endpoint_url=server.url)
        ec2 = aws.client("ec2", "us-east-1")
        builds = synthetic.many(size, seed=7)
        started = time.perf_counter()
        for build in builds:
            # register_image ignores TagSpecifications on moto: tag afterwards, as publish does.
            ami = ec2.register_image(Name=f"bench-{build['packer_run_uuid']}", RootDeviceName="/dev/xvda")["ImageId"]
            build["artifact_id"] = f"us-east-1:{ami}"
        registered = time.perf_counter() - started
        with Catalog.open(work / "moto.db") as catalog:
            catalog.ingest(read_manifest(synthetic.write(work / "moto.json", builds)))
            for image in catalog.list():
                ec2.create_tags(
                    Resources=[image.artifacts[0].artifact_id],
                    Tags=[{"Key": k, "Value": v} for k, v in image_tags(image).items()],
                )
            started = time.perf_counter()
            publish(catalog, aws, "bench", ["us-east-1"], tags=False)
            published = time.perf_counter() - started
            query = {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64", "channel": CHANNEL}
            expected = catalog.latest(region="us-east-1", **query)

        def scan() -> str:
            filters = [{"Name": f"tag:nodeforge:{k}", "Values": [v]} for k, v in query.items()]
            images = ec2.describe_images(Owners=["self"], Filters=filters)["Images"]
            newest = max(images, key=lambda i: (int(_tag(i, "nodeforge:build_time")), i["ImageId"]))
            return str(newest["ImageId"])

        ssm = aws.client("ssm", "us-east-1")
        name = "/nodeforge/bench/1.31/al2023/x86_64/candidate/image_id"
        assert expected is not None and scan() == expected[1].artifact_id
        assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == expected[1].artifact_id
        return {
            "images": size,
            "register_s": round(registered, 1),
            "publish_ssm_s": round(published, 2),
            "describe_images_tag_scan": timed(scan, runs),
            "ssm_get_parameter": timed(lambda: ssm.get_parameter(Name=name), runs),
        }


def _tag(image: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in image.get("Tags", []) if t["Key"] == key), "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,30000,100000", help="catalog sizes (comma-separated)")
    parser.add_argument("--queries", type=int, default=2000, help="latest queries per size")
    parser.add_argument("--moto-images", type=int, default=1000, help="images registered in moto")
    parser.add_argument("--moto-runs", type=int, default=10, help="describe_images scans timed")
    parser.add_argument("--no-moto", action="store_true", help="skip the moto comparison")
    parser.add_argument("--no-process", action="store_true", help="skip the read commands as processes")
    parser.add_argument("--process-runs", type=int, default=15, help="runs of each read command as a process")
    parser.add_argument("--module", default="nodeforge", help="python -m MODULE [catalog] ... for the process runs")
    parser.add_argument("--process-db", type=Path, help="run the read commands against this catalog (any size)")
    args = parser.parse_args()
    figures: dict[str, Any] = {"sqlite": []}
    with tempfile.TemporaryDirectory(prefix="nodeforge-bench-") as tmp:
        work = Path(tmp)
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        for size in sizes:
            figures["sqlite"].append(bench_sqlite(size, work, args.queries))
            print(json.dumps(figures["sqlite"][-1]), flush=True)
        if not args.no_process and (args.process_db or sizes):
            db = args.process_db or work / f"catalog-{max(sizes)}.db"
            figures["processes"] = bench_processes(db, args.process_runs, args.module)
            print(json.dumps(figures["processes"]), flush=True)
        if not args.no_moto:
            figures["moto"] = bench_moto(args.moto_images, work, args.moto_runs)
            print(json.dumps(figures["moto"]), flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
