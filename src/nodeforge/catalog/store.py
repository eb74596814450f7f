"""The catalog on disk: an SQLite file (WAL mode), every write one IMMEDIATE transaction.

Readers never block writers and see a consistent snapshot. Writers queue on the write lock: one that finds it
taken polls for it every few milliseconds (up to ``WRITE_WAIT_S``) instead of failing, and no transaction holds it
long: a large ingest commits in chunks of about ``CHUNK_SECONDS`` and pauses between chunks so that a waiting
writer gets its turn. A process killed mid-write leaves the file as it was before the open transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from contextlib import contextmanager

from nodeforge.catalog.errors import ConflictError, InputError, NotFoundError, RefusedError, SchemaError
from nodeforge.catalog.model import (
    AMI_RE,
    ARCHES,
    CATALOG_ID_RE,
    CHANNEL_RE,
    CORE_COMPONENTS,
    PROVENANCE,
    VERSION_COMPONENTS,
    Artifact,
    Event,
    Image,
    iso,
    utc_now,
)
from nodeforge.catalog.record import Record, factory
from nodeforge.catalog.schema import current_version, migrate

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing/pathlib at run time: read commands start fast (docs/catalog.md)
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path
    from typing import Any

BUSY_TIMEOUT_MS = 30_000
# A writer waits this long for the write lock before giving up ($NODEFORGE_CATALOG_WRITE_WAIT overrides).
WRITE_WAIT_S = 600.0
ENV_WRITE_WAIT = "NODEFORGE_CATALOG_WRITE_WAIT"
# How long one ingest transaction may run before it commits and lets other writers in.
CHUNK_SECONDS = 0.5
# The pause between two chunks: several polls of a waiting writer fit in it.
CHUNK_GAP_S = 0.02
_POLL_S = (0.001, 0.004)
ENV_PATH = "NODEFORGE_CATALOG"
# Test hook: "N:S" makes ingest pause S seconds after writing N images, inside its transaction.
ENV_TEST_PAUSE = "NODEFORGE_CATALOG_TEST_PAUSE"
TEST_PAUSE_MARKER = "nodeforge-catalog-test-hook: paused mid-ingest"

_IMAGE_COLUMNS = (
    "id, build_key, name, builder_type, kubernetes_version, os, os_version, arch, kubelet_version, "
    "containerd_version, runc_version, kernel_version, source_image, git_commit, template, build_id, extra, "
    "build_time, digest, origin, channel, status, deprecate_at, created_at, updated_at"
)
_OWNER_LOOKUP = "SELECT image_id FROM artifacts WHERE region = ? AND artifact_id = ?"
# The newest usable copy: (region, version, os, arch, channel) is the key's prefix, build_time and seq its order.
LATEST_SQL = (
    "SELECT image_id FROM offers"
    " WHERE region = ? AND kubernetes_version = ? AND os = ? AND arch = ? AND channel = ?"
    " AND (status = 'active' OR (status = 'deprecated' AND deprecate_at > ?))"
    " ORDER BY build_time DESC, seq DESC LIMIT 1"
)
# SQL below is built from these module constants only; every value is a bound parameter (hence the S608 noqa).
_CONTENT_FIELDS = ("name", *CORE_COMPONENTS, *VERSION_COMPONENTS, *PROVENANCE, "build_id")


def default_path() -> Path:
    """$NODEFORGE_CATALOG, else $XDG_DATA_HOME/nodeforge/catalog.db (~/.local/share/nodeforge/catalog.db)."""
    from pathlib import Path

    return Path(_default_path())


def _default_path() -> str:
    env = os.environ.get(ENV_PATH)
    if env:
        return os.path.expanduser(env)  # noqa: PTH111 (no pathlib on the read path)
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(  # noqa: PTH118
        os.path.expanduser("~"),  # noqa: PTH111
        ".local",
        "share",
    )
    return os.path.join(data_home, "nodeforge", "catalog.db")  # noqa: PTH118


def actor() -> str:
    if os.environ.get("NODEFORGE_ACTOR"):
        return os.environ["NODEFORGE_ACTOR"]
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class ImageFilter(Record):
    kubernetes_version: str | None = None
    os: str | None = None
    arch: str | None = None
    region: str | None = None
    channel: str | None = None
    status: str | None = None
    limit: int | None = None


class IngestResult(Record, frozen=False):
    new: list[str] = factory(list)
    updated: list[str] = factory(list)
    unchanged: list[str] = factory(list)
    transactions: int = 0
    longest_transaction_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "transactions": self.transactions,
            "longest_transaction_s": round(self.longest_transaction_s, 3),
            "images": {"new": self.new, "updated": self.updated, "unchanged": self.unchanged},
        }


class Catalog:
    """Records, queries and lifecycle changes on one catalog file."""

    def __init__(self, conn: sqlite3.Connection, path: str | Path) -> None:
        self.conn = conn
        self._path = os.fspath(path)

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self._path)

    # -- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True) -> Catalog:
        """Open (and migrate) the catalog at ``path``; ``create=False`` refuses a file that does not exist."""
        # os.path, not pathlib: the read commands import this module and must start fast.
        path = os.path.expanduser(os.fspath(path)) if path is not None else _default_path()  # noqa: PTH111
        if not os.path.exists(path):  # noqa: PTH110
            if not create:
                raise NotFoundError(f"catalog {path} does not exist: ingest a manifest or discover images first")
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # noqa: PTH103, PTH120
            except OSError as exc:
                raise SchemaError(f"catalog {path}: cannot create its folder: {exc.strerror}") from None
        elif os.path.isdir(path):  # noqa: PTH112
            raise InputError(f"catalog {path} is a directory; give a file path")
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise SchemaError(f"catalog {path}: cannot open: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            _check_is_catalog(conn, path)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: bulk ingests stay in memory until commit
            migrate(conn, where=str(path))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SchemaError(f"catalog {path}: not a nodeforge catalog ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all or nothing; waits (and retries) while another writer holds the lock."""
        self._begin_immediate()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        """BEGIN IMMEDIATE, polling every few ms while the database is busy (SQLite's own busy handler backs off
        to 100 ms sleeps, long enough to miss every gap a chunked writer leaves)."""
        wait = _write_wait()
        deadline = time.monotonic() + wait
        self.conn.execute("PRAGMA busy_timeout = 5")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        if _is_busy(exc):
                            raise sqlite3.OperationalError(
                                f"database is locked: another writer held it for over {wait:.0f} s "
                                f"(raise ${ENV_WRITE_WAIT} to wait longer)"
                            ) from exc
                        raise
                    low, high = _POLL_S  # jitter from the clock: no `random` import on the read path
                    time.sleep(low + (time.perf_counter_ns() % 1000) / 1000 * (high - low))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, image_id: str) -> Image:
        row = self.conn.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFoundError(f"no image {image_id} in the catalog")
        return self._with_artifacts([row])[0]

    def resolve(self, ref: str) -> Image:
        """An image by catalog id (or a unique prefix of it), AMI id, Docker reference or exact name."""
        ref = ref.strip()
        if CATALOG_ID_RE.match(ref):
            return self.get(ref)
        ids = [row[0] for row in self.conn.execute("SELECT image_id FROM artifacts WHERE artifact_id = ?", (ref,))]
        if not ids and not AMI_RE.match(ref):
            ids = [row[0] for row in self.conn.execute("SELECT id FROM images WHERE name = ?", (ref,))]
            if not ids and ref.startswith("nf-") and len(ref) >= 5:
                pattern = ref.replace("%", "").replace("_", "") + "%"
                ids = [row[0] for row in self.conn.execute("SELECT id FROM images WHERE id LIKE ?", (pattern,))]
        unique = sorted(set(ids))
        if not unique:
            raise NotFoundError(f"no image matches {ref!r} (catalog id, AMI id, Docker reference or image name)")
        if len(unique) > 1:
            raise InputError(f"{ref!r} matches {len(unique)} images ({', '.join(unique[:5])}); use a catalog id")
        return self.get(unique[0])

    def find_artifact(self, region: str, artifact_id: str) -> Image | None:
        row = self.conn.execute(
            "SELECT image_id FROM artifacts WHERE region = ? AND artifact_id = ?", (region, artifact_id)
        ).fetchone()
        return self.get(row[0]) if row else None

    def find_build(self, build_key: str) -> Image | None:
        row = self.conn.execute("SELECT id FROM images WHERE build_key = ?", (build_key,)).fetchone()
        return self.get(row[0]) if row else None

    def list(self, where: ImageFilter | None = None) -> list[Image]:
        where = where or ImageFilter()
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("kubernetes_version", "os", "arch", "channel", "status"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.region is not None:
            clauses.append("id IN (SELECT image_id FROM artifacts WHERE region = ?)")
            params.append(where.region)
        sql = f"SELECT {_IMAGE_COLUMNS} FROM images"  # noqa: S608
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY build_time DESC, rowid DESC"
        if where.limit is not None:
            sql += " LIMIT ?"
            params.append(where.limit)
        return self._with_artifacts(self.conn.execute(sql, params).fetchall())

    def latest(
        self, *, kubernetes_version: str, os: str, arch: str, region: str, channel: str, now: str | None = None
    ) -> tuple[Image, Artifact] | None:
        """The newest usable image of a (version, os, arch, channel) with an available copy in ``region``.

        Usable: active, or deprecated with a deprecation date still ahead. One descent of the ``offers`` key
        (region, version, os, arch, channel, build_time, seq): a miss costs what a hit costs.
        """
        row = self.conn.execute(LATEST_SQL, (region, kubernetes_version, os, arch, channel, now or iso(utc_now())))
        found = row.fetchone()
        if found is None:
            return None
        image = self.get(found[0])
        artifact = image.artifact(region)
        assert artifact is not None
        return image, artifact

    def offered(
        self, *, kubernetes_version: str, os: str, channel: str, arch: str | None = None
    ) -> list[tuple[str, str]]:
        """(region, arch) pairs where the channel has a usable image of this version and OS."""
        # Seek region by region along the offers key (a handful of regions), then probe each (region, arch):
        # some hundred index lookups instead of a scan of every offer.
        pairs: list[tuple[str, str]] = []
        region = ""
        arches = (arch,) if arch is not None else sorted(ARCHES)
        while True:
            row = self.conn.execute(
                "SELECT region FROM offers WHERE region > ? ORDER BY region LIMIT 1", (region,)
            ).fetchone()
            if row is None:
                return pairs
            region = row[0]
            for candidate in arches:
                hit = self.conn.execute(
                    "SELECT 1 FROM offers WHERE region = ? AND kubernetes_version = ? AND os = ? AND arch = ?"
                    " AND channel = ? LIMIT 1",
                    (region, kubernetes_version, os, candidate, channel),
                ).fetchone()
                if hit:
                    pairs.append((region, candidate))

    def history(self, image_id: str | None = None, limit: int | None = None) -> list[Event]:
        sql = "SELECT seq, at, image_id, region, action, detail, actor FROM events"
        params: list[Any] = []
        if image_id is not None:
            sql += " WHERE image_id = ?"
            params.append(image_id)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self.conn.execute(sql, params).fetchall()
        return [Event(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in reversed(rows)]

    def counts(self) -> dict[str, int]:
        return {
            table: self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("images", "artifacts", "events")
        }

    def schema_version(self) -> int:
        return current_version(self.conn)

    # -- writes --------------------------------------------------------------------------------------------

    def ingest(
        self, images: Sequence[Image], *, source: str = "", chunk_seconds: float = CHUNK_SECONDS
    ) -> IngestResult:
        """Record builds; idempotent: a build already recorded with the same content is left as it is.

        Builds are written in transactions of about ``chunk_seconds`` each (a batch that fits is one
        transaction: all or nothing); between two chunks other writers get the lock. Each build (its record, its
        copies, its event) is always in one transaction. A conflict stops the ingest: the builds of earlier
        chunks stay recorded, and the error says how many; ingesting again after the fix adds the rest.
        """
        result = IngestResult()
        pause = _test_pause()
        now = iso(utc_now())
        who = actor()
        done = committed = 0
        while done < len(images) or result.transactions == 0:
            if result.transactions:
                time.sleep(CHUNK_GAP_S)  # a writer polling for the lock gets in here
            try:
                with self.write() as conn:
                    started = time.monotonic()
                    while done < len(images):
                        image = images[done]
                        detail = {"source": image.origin or source}
                        self._ingest_one(conn, image, now, who, result, action="ingested", detail=detail)
                        done += 1
                        if pause and done == pause[0]:
                            held = conn.execute("SELECT count(*) FROM images").fetchone()[0]
                            print(
                                f"{TEST_PAUSE_MARKER}: {held} images in the open transaction",
                                file=sys.stderr,
                                flush=True,
                            )
                            time.sleep(pause[1])
                        if time.monotonic() - started >= chunk_seconds:
                            break
                    held_for = time.monotonic() - started
            except ConflictError as exc:
                if committed:
                    raise ConflictError(
                        f"{exc} (the {committed} build(s) before it are recorded; fix this one and ingest again)"
                    ) from None
                raise
            committed = done
            result.transactions += 1
            result.longest_transaction_s = max(result.longest_transaction_s, held_for)
        return result

    def _ingest_one(
        self,
        conn: sqlite3.Connection,
        image: Image,
        now: str,
        who: str,
        result: IngestResult,
        *,
        action: str,
        detail: dict[str, Any],
    ) -> None:
        existing = self._existing_for(conn, image)
        if existing is None:
            self._insert(conn, image, now)
            _event(conn, now, who, image.id, None, action, {**detail, "digest": image.digest})
            result.new.append(image.id)
            return
        changed = False
        from_tags, held_from_tags = image.origin.startswith("ec2:"), existing.origin.startswith("ec2:")
        if existing.build_key != image.build_key and not (from_tags or held_from_tags):
            held = {(a.region, a.artifact_id) for a in existing.artifacts}
            copies = ", ".join(
                f"{a.region}:{a.artifact_id}" for a in image.artifacts if (a.region, a.artifact_id) in held
            )
            raise ConflictError(f"{copies} already recorded as {existing.id}, build {existing.build_key}")
        if held_from_tags and (existing.digest != image.digest or existing.build_key != image.build_key):
            # First seen through EC2 tags; a manifest (or newer tags) now says what the image is.
            self._update_content(conn, existing.id, image, now)
            _event(conn, now, who, existing.id, None, "updated", {**detail, "digest": image.digest})
            changed = True
        elif existing.digest != image.digest:
            raise ConflictError(
                f"build {image.build_key} is already catalogued as {existing.id} with different content "
                f"({existing.digest} vs {image.digest})"
            )
        for artifact in image.artifacts:
            held = existing.artifact(artifact.region)
            if held is None:
                conn.execute(
                    "INSERT INTO artifacts (image_id, region, artifact_id, account_id, state) VALUES (?, ?, ?, ?, ?)",
                    (existing.id, artifact.region, artifact.artifact_id, artifact.account_id, artifact.state),
                )
                _event(conn, now, who, existing.id, artifact.region, "region-added", {"image_id": artifact.artifact_id})
                changed = True
            elif held.artifact_id != artifact.artifact_id:
                raise ConflictError(
                    f"{existing.id} already has {held.artifact_id} in {artifact.region}, not {artifact.artifact_id}"
                )
        if changed:
            conn.execute("UPDATE images SET updated_at = ? WHERE id = ?", (now, existing.id))
            result.updated.append(existing.id)
        else:
            result.unchanged.append(existing.id)

    def _existing_for(self, conn: sqlite3.Connection, image: Image) -> Image | None:
        """The catalogued image that is this build: same build key, or holding its artifacts."""
        owners: set[str] = set()
        id_taken = False
        for image_id, build_key in conn.execute(
            "SELECT id, build_key FROM images WHERE build_key = ? OR id = ?", (image.build_key, image.id)
        ):
            if build_key == image.build_key:
                owners.add(image_id)
            else:
                id_taken = True
        pairs = [value for a in image.artifacts for value in (a.region, a.artifact_id)]
        # One indexed lookup per copy (a row-value IN (VALUES ...) would scan the table).
        sql = " UNION ALL ".join([_OWNER_LOOKUP] * len(image.artifacts))
        owners.update(row[0] for row in conn.execute(sql, pairs))
        if len(owners) > 1:
            raise ConflictError(
                f"build {image.build_key} ({image.name}) maps onto several catalogued images: "
                + ", ".join(sorted(owners))
            )
        if not owners:
            if id_taken:
                raise ConflictError(f"catalog id {image.id} is already used by another build")
            return None
        return self.get(owners.pop())

    def _insert(self, conn: sqlite3.Connection, image: Image, now: str) -> None:
        conn.execute(
            f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES ({', '.join('?' * 25)})",  # noqa: S608
            (
                image.id,
                image.build_key,
                image.name,
                image.builder_type,
                image.kubernetes_version,
                image.os,
                image.os_version,
                image.arch,
                image.kubelet_version,
                image.containerd_version,
                image.runc_version,
                image.kernel_version,
                image.source_image,
                image.git_commit,
                image.template,
                image.build_id,
                json.dumps(image.extra, sort_keys=True),
                image.build_time,
                image.digest,
                image.origin,
                image.channel,
                image.status,
                image.deprecate_at,
                now,
                now,
            ),
        )
        conn.executemany(
            "INSERT INTO artifacts (image_id, region, artifact_id, account_id, state) VALUES (?, ?, ?, ?, ?)",
            [(image.id, a.region, a.artifact_id, a.account_id, a.state) for a in image.artifacts],
        )

    def _update_content(self, conn: sqlite3.Connection, image_id: str, image: Image, now: str) -> None:
        assignments = ", ".join(f"{name} = ?" for name in _CONTENT_FIELDS)
        conn.execute(
            f"UPDATE images SET {assignments}, build_key = ?, extra = ?, digest = ?, origin = ?, updated_at = ?"  # noqa: S608
            " WHERE id = ?",
            (
                *(getattr(image, name) for name in _CONTENT_FIELDS),
                image.build_key,
                json.dumps(image.extra, sort_keys=True),
                image.digest,
                image.origin,
                now,
                image_id,
            ),
        )

    def add_discovered(
        self, images: Iterable[Image], *, action: str = "discovered", source: str = "ec2"
    ) -> tuple[IngestResult, list[str]]:
        """Record images rebuilt from EC2 tags or SSM (same rules as ingest); a conflicting one is skipped, with why."""
        result = IngestResult()
        skipped: list[str] = []
        now = iso(utc_now())
        who = actor()
        pending = list(images)
        done = 0
        while done < len(pending) or result.transactions == 0:
            if result.transactions:
                time.sleep(CHUNK_GAP_S)  # chunked like ingest: other writers get the lock in between
            with self.write() as conn:
                started = time.monotonic()
                while done < len(pending):
                    image = pending[done]
                    done += 1
                    conn.execute("SAVEPOINT discovered")
                    try:
                        self._ingest_one(conn, image, now, who, result, action=action, detail={"source": source})
                    except ConflictError as exc:
                        conn.execute("ROLLBACK TO discovered")
                        where = ", ".join(f"{a.region}:{a.artifact_id}" for a in image.artifacts)
                        skipped.append(f"{where}: {exc}")
                    conn.execute("RELEASE discovered")
                    if time.monotonic() - started >= CHUNK_SECONDS:
                        break
                held_for = time.monotonic() - started
            result.transactions += 1
            result.longest_transaction_s = max(result.longest_transaction_s, held_for)
        return result, skipped

    def set_channel(self, image_id: str, channel: str, *, action: str, reason: str) -> Image:
        if not CHANNEL_RE.match(channel):
            raise InputError(f"channel {channel!r}: use lower-case letters, digits and '-' (e.g. candidate, stable)")
        if not reason.strip():
            raise InputError(f"{action} needs a reason (--reason)")
        with self.write() as conn:
            image = self.get(image_id)
            if image.channel == channel:
                return image  # already there: a no-op, whatever the status
            if image.status != "active":
                raise RefusedError(f"{image.id} is {image.status}; only active images change channel")
            now = iso(utc_now())
            conn.execute("UPDATE images SET channel = ?, updated_at = ? WHERE id = ?", (channel, now, image.id))
            _event(conn, now, actor(), image.id, None, action, {"from": image.channel, "to": channel, "reason": reason})
        return self.get(image_id)

    def deprecate(self, image_id: str, deprecate_at: str, *, reason: str) -> Image:
        with self.write() as conn:
            image = self.get(image_id)
            if image.status == "retired":
                raise RefusedError(f"{image.id} is already retired")
            if image.status == "deprecated" and image.deprecate_at == deprecate_at:
                return image
            now = iso(utc_now())
            conn.execute(
                "UPDATE images SET status = 'deprecated', deprecate_at = ?, updated_at = ? WHERE id = ?",
                (deprecate_at, now, image.id),
            )
            detail = {"deprecate_at": deprecate_at, "previous": image.deprecate_at, "reason": reason}
            _event(conn, now, actor(), image.id, None, "deprecated", detail)
        return self.get(image_id)

    def set_artifact_state(
        self, image_id: str, region: str, state: str, *, action: str, detail: dict[str, Any] | None = None
    ) -> Image:
        """Change one region's copy (retired, missing, available again); the image is retired with its last copy."""
        with self.write() as conn:
            image = self.get(image_id)
            held = image.artifact(region)
            if held is None:
                raise NotFoundError(f"{image.id} has no copy in {region}")
            now = iso(utc_now())
            conn.execute("UPDATE artifacts SET state = ? WHERE image_id = ? AND region = ?", (state, image.id, region))
            _event(conn, now, actor(), image.id, region, action, {"image_id": held.artifact_id, **(detail or {})})
            states = [state if a.region == region else a.state for a in image.artifacts]
            if image.status != "retired" and "available" not in states and "retired" in states:
                conn.execute("UPDATE images SET status = 'retired', updated_at = ? WHERE id = ?", (now, image.id))
                _event(conn, now, actor(), image.id, None, "retired", {"regions": list(image.regions)})
            else:
                conn.execute("UPDATE images SET updated_at = ? WHERE id = ?", (now, image.id))
        return self.get(image_id)

    def record(self, image_id: str | None, action: str, detail: dict[str, Any], region: str | None = None) -> None:
        """An event about work done outside the catalog (publish, AWS tags)."""
        with self.write() as conn:
            _event(conn, iso(utc_now()), actor(), image_id, region, action, detail)

    # -- rows to records ------------------------------------------------------------------------------------

    def _with_artifacts(self, rows: Sequence[Sequence[Any]]) -> list[Image]:
        if not rows:
            return []
        by_image: dict[str, list[Artifact]] = {row[0]: [] for row in rows}
        ids = list(by_image)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT image_id, region, artifact_id, account_id, state FROM artifacts WHERE image_id IN ({marks})"  # noqa: S608
            for image_id, region, artifact_id, account_id, state in self.conn.execute(sql, chunk):
                by_image[image_id].append(Artifact(region, artifact_id, account_id, state))
        return [_image_from_row(row, tuple(sorted(by_image[row[0]], key=_by_region))) for row in rows]

    def region_artifacts(self, region: str) -> dict[str, tuple[str, str]]:
        """AMI id -> (catalog id, state) of every copy recorded in ``region``."""
        rows = self.conn.execute("SELECT artifact_id, image_id, state FROM artifacts WHERE region = ?", (region,))
        return {ami: (image_id, state) for ami, image_id, state in rows}


def _image_from_row(row: Sequence[Any], artifacts: tuple[Artifact, ...]) -> Image:
    (
        image_id,
        build_key,
        name,
        builder_type,
        kubernetes_version,
        os_family,
        os_version,
        arch,
        kubelet,
        containerd,
        runc,
        kernel,
        source_image,
        git_commit,
        template,
        build_id,
        extra,
        build_time,
        _digest,
        origin,
        channel,
        status,
        deprecate_at,
        created_at,
        updated_at,
    ) = row
    return Image(
        build_key=build_key,
        name=name,
        builder_type=builder_type,
        kubernetes_version=kubernetes_version,
        os=os_family,
        arch=arch,
        build_time=build_time,
        artifacts=artifacts,
        os_version=os_version,
        kubelet_version=kubelet,
        containerd_version=containerd,
        runc_version=runc,
        kernel_version=kernel,
        source_image=source_image,
        git_commit=git_commit,
        template=template,
        build_id=build_id,
        extra=json.loads(extra),
        origin=origin,
        id=image_id,
        channel=channel,
        status=status,
        deprecate_at=deprecate_at,
        created_at=created_at,
        updated_at=updated_at,
    )


def _by_region(artifact: Artifact) -> str:
    return artifact.region


def _event(
    conn: sqlite3.Connection,
    at: str,
    who: str,
    image_id: str | None,
    region: str | None,
    action: str,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        "INSERT INTO events (at, image_id, region, action, detail, actor) VALUES (?, ?, ?, ?, ?, ?)",
        (at, image_id, region, action, json.dumps(detail, sort_keys=True), who),
    )


def _check_is_catalog(conn: sqlite3.Connection, path: str) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_version" not in tables:
        raise SchemaError(f"catalog {path}: an SQLite file but not a nodeforge catalog (no schema_version table)")


def _write_wait() -> float:
    raw = os.environ.get(ENV_WRITE_WAIT)
    try:
        return float(raw) if raw else WRITE_WAIT_S
    except ValueError:
        raise InputError(f"${ENV_WRITE_WAIT}={raw!r}: give seconds, e.g. 600") from None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _test_pause() -> tuple[int, float] | None:
    raw = os.environ.get(ENV_TEST_PAUSE)
    if not raw:
        return None
    count, _, seconds = raw.partition(":")
    return int(count), float(seconds or "60")
