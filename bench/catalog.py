"""Catalog benchmark: ingest rate and `latest` latency at 1k, 10k and 100k images, against the same question
answered by a describe_images tag-filter scan (and an SSM parameter read) on moto_server holding 1k images.

Prints the figures; asserts nothing. Run: .venv/bin/python bench/catalog.py [--sizes 1000,10000] [--no-moto]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
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
from nodeforge.catalog.store import Catalog
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


def random_query(rng: random.Random) -> dict[str, str]:
    return {
        "kubernetes_version": rng.choice(synthetic.VERSIONS),
        "os": rng.choice(synthetic.OSES),
        "arch": rng.choice(synthetic.ARCHES),
        "region": rng.choice(synthetic.REGIONS),
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
        sample = [random_query(rng) for _ in range(queries)]
        found = sum(catalog.latest(**query) is not None for query in sample)
        cursor = iter(sample * 2)
        latency = timed(lambda: catalog.latest(**next(cursor)), queries)
    return {
        "images": size,
        "manifest_mb": round(manifest.stat().st_size / 1e6, 1),
        "parse_s": round(parsed - started, 2),
        "write_s": round(ingested - parsed, 2),
        "ingest_images_per_s": round(len(result.new) / (ingested - started)),
        "reingest_s (0 new)": round(reingested - ingested, 2),
        "reingest_new": len(again.new),
        "latest": latency,
        "latest_answered": f"{found}/{queries}",
        "db_mb": round(db.stat().st_size / 1e6, 1),
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
    parser.add_argument("--sizes", default="1000,10000,100000", help="catalog sizes (comma-separated)")
    parser.add_argument("--queries", type=int, default=2000, help="latest queries per size")
    parser.add_argument("--moto-images", type=int, default=1000, help="images registered in moto")
    parser.add_argument("--moto-runs", type=int, default=10, help="describe_images scans timed")
    parser.add_argument("--no-moto", action="store_true", help="skip the moto comparison")
    args = parser.parse_args()
    figures: dict[str, Any] = {"sqlite": []}
    with tempfile.TemporaryDirectory(prefix="nodeforge-bench-") as tmp:
        work = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            figures["sqlite"].append(bench_sqlite(size, work, args.queries))
            print(json.dumps(figures["sqlite"][-1]), flush=True)
        if not args.no_moto:
            figures["moto"] = bench_moto(args.moto_images, work, args.moto_runs)
            print(json.dumps(figures["moto"]), flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
