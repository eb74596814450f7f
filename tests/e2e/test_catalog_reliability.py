"""The catalog under real processes: SIGKILL in the middle of an ingest, two writers at once, a 100k ingest
with a promote loop beside it."""

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

import pytest

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


PROMOTER = """
import json, sys, time
from pathlib import Path
from nodeforge.catalog.store import Catalog
db, go, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
ops = 0
with Catalog.open(db, create=False) as catalog:
    ids = [image.id for image in catalog.list()]
    while not stop.exists():
        image_id = ids[ops % len(ids)]
        to = "stable" if catalog.get(image_id).channel == "candidate" else "candidate"
        catalog.set_channel(image_id, to, action="promoted" if to == "stable" else "demoted", reason=f"op {ops}")
        ops += 1
        time.sleep(0.005)
print(json.dumps({"ops": ops}))
"""


@pytest.mark.xdist_group("catalog-writes")
def test_100k_ingest_beside_a_promote_loop_both_complete(tmp_path: Path) -> None:
    """The ingest commits in chunks, so the promote loop keeps getting the lock while it runs; nothing is lost."""
    db = tmp_path / "catalog.db"
    seed = synthetic.write(tmp_path / "seed.json", synthetic.many(20, seed=3))
    subprocess.run([*CLI, "ingest", str(seed), "--db", str(db)], check=True, capture_output=True)
    # One region per build: the test is about the write lock, not copies (fewer rows, a shorter run).
    big = synthetic.write(tmp_path / "big.json", synthetic.many(100_000, seed=4, max_regions=1))
    go, stop = tmp_path / "go", tmp_path / "stop"
    promoter = subprocess.Popen(
        [sys.executable, "-c", PROMOTER, str(db), str(go), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    go.touch()
    ingest = subprocess.run(
        [*CLI, "ingest", str(big), "--db", str(db), "-o", "json"], capture_output=True, text=True, timeout=600
    )
    stop.touch()
    out, err = promoter.communicate(timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    assert promoter.returncode == 0, err
    ops = json.loads(out)["ops"]
    result = json.loads(ingest.stdout)
    assert result["new"] == 100_000
    assert result["transactions"] > 1  # chunked: other writers got turns in between

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 100_020
        moves = conn.execute("SELECT seq FROM events WHERE action IN ('promoted', 'demoted')").fetchall()
        assert len(moves) == ops  # every promotion the loop made is recorded
        last_ingest = conn.execute("SELECT max(seq) FROM events WHERE action = 'ingested'").fetchone()[0]
        first_ingest = conn.execute("SELECT min(seq) FROM events WHERE action = 'ingested' AND seq > 20").fetchone()[0]
        during = [seq for (seq,) in moves if first_ingest < seq < last_ingest]
        # Not starved until the ingest ended: the loop wrote between the ingest's own chunks.
        assert len(during) >= 3, (len(during), result["transactions"])
        stable = conn.execute("SELECT count(*) FROM images WHERE channel = 'stable'").fetchone()[0]
        by_events = conn.execute(
            "SELECT count(*) FROM (SELECT image_id, max(seq) AS s FROM events WHERE action IN ('promoted', 'demoted')"
            " GROUP BY image_id) AS last JOIN events AS e ON e.seq = last.s WHERE e.action = 'promoted'"
        ).fetchone()[0]
        assert stable == by_events  # each image's channel is what its last recorded move says
    assert integrity(db) == "ok"
