"""Schema versions and migrations, and what opening a catalog file refuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nodeforge.catalog.errors import InputError, NotFoundError, SchemaError
from nodeforge.catalog.schema import LATEST, MIGRATIONS, current_version, migrate
from nodeforge.catalog.store import Catalog, default_path


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_new_catalog_is_at_the_latest_version_in_wal_mode(db: Path) -> None:
    with Catalog.open(db) as catalog:
        assert catalog.schema_version() == LATEST == len(MIGRATIONS)
        assert catalog.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"schema_version", "images", "artifacts", "events"} <= tables(catalog.conn)
    with Catalog.open(db, create=False) as again:  # opening again migrates nothing
        assert again.schema_version() == LATEST


def test_pending_migrations_apply_in_order(db: Path) -> None:
    Catalog.open(db).close()
    conn = raw(db)
    extra = (*MIGRATIONS, ("CREATE TABLE notes (text TEXT)", "INSERT INTO notes VALUES ('v2')"))
    assert migrate(conn, extra) == LATEST + 1
    assert current_version(conn) == LATEST + 1
    assert conn.execute("SELECT text FROM notes").fetchall() == [("v2",)]


def test_a_failing_migration_changes_nothing(db: Path) -> None:
    Catalog.open(db).close()
    conn = raw(db)
    before = tables(conn)
    broken = (*MIGRATIONS, ("CREATE TABLE half (x)", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert tables(conn) == before
    assert current_version(conn) == LATEST


def test_a_newer_catalog_is_refused(db: Path) -> None:
    Catalog.open(db).close()
    raw(db).execute("UPDATE schema_version SET version = 99")
    with pytest.raises(SchemaError, match=r"catalog\.db: schema version 99 is newer than this nodeforge knows"):
        Catalog.open(db)


def test_files_that_are_not_catalogs(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all " * 100)
    with pytest.raises(SchemaError, match=r"notes\.txt: not a nodeforge catalog"):
        Catalog.open(text)
    other = tmp_path / "other.db"
    raw(other).execute("CREATE TABLE t (x)")
    with pytest.raises(SchemaError, match=r"other\.db: an SQLite file but not a nodeforge catalog"):
        Catalog.open(other)
    with pytest.raises(InputError, match="is a directory"):
        Catalog.open(tmp_path)


def test_reads_never_create_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"typo\.db does not exist"):
        Catalog.open(tmp_path / "typo.db", create=False)
    assert not (tmp_path / "typo.db").exists()


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NODEFORGE_CATALOG", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".local/share/nodeforge/catalog.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg/nodeforge/catalog.db"
    monkeypatch.setenv("NODEFORGE_CATALOG", str(tmp_path / "team.db"))
    assert default_path() == tmp_path / "team.db"
    with Catalog.open() as catalog:
        assert catalog.path == tmp_path / "team.db"


def test_a_version_1_catalog_gets_its_offers(db: Path) -> None:
    """Migration 2 fills `offers` from what a version-1 catalog holds; triggers keep it from then on."""
    conn = raw(db)
    migrate(conn, MIGRATIONS[:1])
    row = (
        "nf-000000000001",
        "packer:r:n",
        "n",
        "amazon-ebs",
        "1.31",
        "al2023",
        "x86_64",
        5,
        "sha256:x",
        "m.json",
        "stable",
        "active",
        "t",
        "t",
    )
    conn.execute(
        "INSERT INTO images (id, build_key, name, builder_type, kubernetes_version, os, arch, build_time, digest,"
        " origin, channel, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )
    for region, ami, state in (
        ("us-east-1", "ami-0a000000000000001", "available"),
        ("eu-west-1", "ami-0b000000000000001", "retired"),
    ):
        conn.execute(
            "INSERT INTO artifacts (image_id, region, artifact_id, state) VALUES (?, ?, ?, ?)",
            ("nf-000000000001", region, ami, state),
        )
    conn.close()
    with Catalog.open(db) as catalog:
        assert catalog.schema_version() == LATEST
        query = {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64", "channel": "stable"}
        found = catalog.latest(region="us-east-1", **query)
        assert found is not None and found[1].artifact_id == "ami-0a000000000000001"
        assert catalog.latest(region="eu-west-1", **query) is None  # retired copies are not offered
        catalog.set_channel("nf-000000000001", "candidate", action="demoted", reason="test")
        assert catalog.latest(region="us-east-1", **query) is None
        assert catalog.latest(region="us-east-1", **{**query, "channel": "candidate"}) is not None
