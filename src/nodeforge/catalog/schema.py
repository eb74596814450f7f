"""The catalog's SQLite schema as a list of migrations, applied in order inside one transaction.

The ``schema_version`` table holds the version reached. Add a migration by appending to MIGRATIONS; never edit
one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from nodeforge.catalog.errors import SchemaError

Migration = tuple[str, ...]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: images, their copies per region, the history of changes.
    (
        """CREATE TABLE images (
            id TEXT PRIMARY KEY,
            build_key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            builder_type TEXT NOT NULL,
            kubernetes_version TEXT NOT NULL,
            os TEXT NOT NULL,
            os_version TEXT,
            arch TEXT NOT NULL CHECK (arch IN ('x86_64', 'arm64')),
            kubelet_version TEXT,
            containerd_version TEXT,
            runc_version TEXT,
            kernel_version TEXT,
            source_image TEXT,
            git_commit TEXT,
            template TEXT,
            build_id TEXT,
            extra TEXT NOT NULL DEFAULT '{}',
            build_time INTEGER NOT NULL,
            digest TEXT NOT NULL,
            origin TEXT NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'deprecated', 'retired')),
            deprecate_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE artifacts (
            image_id TEXT NOT NULL REFERENCES images (id),
            region TEXT NOT NULL,
            artifact_id TEXT NOT NULL,
            account_id TEXT,
            state TEXT NOT NULL CHECK (state IN ('available', 'retired', 'missing')),
            PRIMARY KEY (image_id, region),
            UNIQUE (region, artifact_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            image_id TEXT REFERENCES images (id),
            region TEXT,
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            actor TEXT NOT NULL
        )""",
        # `latest`: walk one (version, os, arch, channel) backwards (newest build_time, then rowid, first) and
        # probe the region's copy by primary key; no sort.
        "CREATE INDEX images_latest ON images (kubernetes_version, os, arch, channel, build_time)",
        "CREATE INDEX images_digest ON images (digest)",
        "CREATE INDEX images_name ON images (name)",
        "CREATE INDEX events_image ON events (image_id, seq)",
    ),
    # 2: `offers`, one row per available copy of a non-retired image, keyed the way `latest` asks: (region, version,
    # os, arch, channel) then newest first. A hit and a miss are both one B-tree descent, whatever the catalog
    # size. Kept by triggers, so no write path can forget it.
    (
        """CREATE TABLE offers (
            region TEXT NOT NULL,
            kubernetes_version TEXT NOT NULL,
            os TEXT NOT NULL,
            arch TEXT NOT NULL,
            channel TEXT NOT NULL,
            build_time INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            image_id TEXT NOT NULL,
            artifact_id TEXT NOT NULL,
            status TEXT NOT NULL,
            deprecate_at TEXT,
            PRIMARY KEY (region, kubernetes_version, os, arch, channel, build_time, seq)
        ) WITHOUT ROWID""",
        "CREATE INDEX offers_image ON offers (image_id, region)",
        # `list` (newest first, often with --limit) without a scan and sort of every image.
        "CREATE INDEX images_built ON images (build_time)",
        """CREATE TRIGGER offers_artifact_insert AFTER INSERT ON artifacts WHEN NEW.state = 'available' BEGIN
            INSERT INTO offers SELECT NEW.region, i.kubernetes_version, i.os, i.arch, i.channel, i.build_time,
                i.rowid, i.id, NEW.artifact_id, i.status, i.deprecate_at
            FROM images AS i WHERE i.id = NEW.image_id AND i.status != 'retired';
        END""",
        """CREATE TRIGGER offers_artifact_update
        AFTER UPDATE OF image_id, region, artifact_id, state ON artifacts BEGIN
            DELETE FROM offers WHERE image_id = OLD.image_id AND region = OLD.region;
            INSERT INTO offers SELECT NEW.region, i.kubernetes_version, i.os, i.arch, i.channel, i.build_time,
                i.rowid, i.id, NEW.artifact_id, i.status, i.deprecate_at
            FROM images AS i WHERE i.id = NEW.image_id AND i.status != 'retired' AND NEW.state = 'available';
        END""",
        """CREATE TRIGGER offers_artifact_delete AFTER DELETE ON artifacts BEGIN
            DELETE FROM offers WHERE image_id = OLD.image_id AND region = OLD.region;
        END""",
        """CREATE TRIGGER offers_image_update
        AFTER UPDATE OF id, kubernetes_version, os, arch, channel, build_time, status, deprecate_at ON images BEGIN
            DELETE FROM offers WHERE image_id = OLD.id;
            INSERT INTO offers SELECT a.region, NEW.kubernetes_version, NEW.os, NEW.arch, NEW.channel, NEW.build_time,
                NEW.rowid, NEW.id, a.artifact_id, NEW.status, NEW.deprecate_at
            FROM artifacts AS a WHERE a.image_id = NEW.id AND a.state = 'available' AND NEW.status != 'retired';
        END""",
        """CREATE TRIGGER offers_image_delete AFTER DELETE ON images BEGIN
            DELETE FROM offers WHERE image_id = OLD.id;
        END""",
        """INSERT INTO offers SELECT a.region, i.kubernetes_version, i.os, i.arch, i.channel, i.build_time, i.rowid,
            i.id, a.artifact_id, i.status, i.deprecate_at
        FROM images AS i JOIN artifacts AS a ON a.image_id = i.id
        WHERE a.state = 'available' AND i.status != 'retired'""",
    ),
)

LATEST = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS, *, where: str = "") -> int:
    """Bring the catalog to the last migration; all pending steps in one write transaction. Returns the version.

    ``conn`` must be in autocommit mode (isolation_level=None): the transaction is managed here.
    """
    target = len(migrations)
    if current_version(conn) == target:
        return target
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)  # again, under the write lock: another process may have migrated
        if version > target:
            raise SchemaError(
                f"{where or 'catalog'}: schema version {version} is newer than this nodeforge knows ({target}); "
                "upgrade nodeforge"
            )
        if version == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for statements in migrations[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return target
