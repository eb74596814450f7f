"""The catalog under real processes: SIGKILL in the middle of an ingest, two writers at once."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from nodeforge.catalog import synthetic
from nodeforge.catalog.schema import LATEST
from nodeforge.catalog.store import ENV_TEST_PAUSE, TEST_PAUSE_MARKER

CLI = [sys.executable, "-m", "nodeforge.catalog"]
WRITER = """
import sys, time
from pathlib import Path
from nodeforge.catalog.manifest import read_manifest
from nodeforge.catalog.store import Catalog
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
for manifest in sys.argv[3:]:
    with Catalog.open(Path(sys.argv[1])) as catalog:
        catalog.ingest(read_manifest(Path(manifest)))
"""


def snapshot(db: Path) -> dict[str, list]:
    with sqlite3.connect(db) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("schema_version", "images", "artifacts", "events")
        }


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return line
    proc.kill()
    raise AssertionError(f"no {marker!r} from the ingest process; stderr: {''.join(seen)}")


def test_sigkill_mid_ingest_leaves_the_catalog_as_before(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    base = synthetic.write(tmp_path / "base.json", synthetic.many(20, seed=1))
    big = synthetic.write(tmp_path / "big.json", synthetic.many(400, seed=2))
    subprocess.run([*CLI, "ingest", str(base), "--db", str(db)], check=True, capture_output=True)
    before = snapshot(db)

    env = {**os.environ, ENV_TEST_PAUSE: "250:60"}
    proc = subprocess.Popen(
        [*CLI, "ingest", str(big), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = wait_for_line(proc, TEST_PAUSE_MARKER)
    assert re.search(r": 270 images in the open transaction", line)  # 20 committed + 250 written, uncommitted
    assert snapshot(db) == before  # other connections see only what is committed
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL

    assert snapshot(db) == before
    assert integrity(db) == "ok"
    done = subprocess.run(
        [*CLI, "ingest", str(big), "--db", str(db), "-o", "json"], check=True, capture_output=True, text=True
    )
    assert '"new": 400' in done.stdout
    assert integrity(db) == "ok"


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"  # does not exist yet: both writers also race to create and migrate it
    go = tmp_path / "go"
    manifests = {
        writer: [
            str(synthetic.write(tmp_path / f"{writer}{n}.json", synthetic.many(100, seed=seed * 10 + n)))
            for n in range(4)
        ]
        for writer, seed in (("a", 1), ("b", 2))
    }
    # Each ingest sleeps inside its transaction after 50 images: the other writer must wait for the lock.
    env = {**os.environ, ENV_TEST_PAUSE: "50:0.15"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(go), *files],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for files in manifests.values()
    ]
    time.sleep(0.3)
    go.touch()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert stderr.count(TEST_PAUSE_MARKER) == 4

    state = snapshot(db)
    assert state["schema_version"] == [(LATEST,)]
    assert len(state["images"]) == 800
    assert len(state["events"]) == 800
    assert len({row[0] for row in state["images"]}) == 800
    copies = sum(
        len(build["artifact_id"].split(","))
        for files in manifests.values()
        for path in files
        for build in json.loads(Path(path).read_text())["builds"]
    )
    assert len(state["artifacts"]) == copies
    assert integrity(db) == "ok"
