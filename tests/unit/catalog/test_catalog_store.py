"""The SQLite catalog: idempotent ingest, all-or-nothing writes, queries, lifecycle, history."""

from __future__ import annotations

import json

import pytest

from nodeforge.catalog import synthetic
from nodeforge.catalog.errors import ConflictError, InputError, NotFoundError, RefusedError
from nodeforge.catalog.manifest import parse_manifest
from nodeforge.catalog.model import Image
from nodeforge.catalog.store import LATEST_SQL, Catalog, ImageFilter

E1, E2, E3, E4 = (f"ami-0e{n:015x}" for n in range(1, 5))
W1, W2 = (f"ami-0f{n:015x}" for n in range(1, 3))


def images(*builds: dict) -> list[Image]:
    return parse_manifest(json.dumps(synthetic.manifest(list(builds))), source="m.json")


def b(run: str, amis: dict[str, str], **kwargs: object) -> dict:
    return synthetic.build(run=run, amis=amis, **kwargs)


def dump(catalog: Catalog) -> dict[str, list]:
    return {
        table: catalog.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("images", "artifacts", "events")
    }


def test_ingest_then_again_changes_nothing(catalog: Catalog) -> None:
    batch = images(b("r1", {"us-east-1": E1, "us-west-2": W1}), b("r2", {"us-east-1": E2}, build_time=1_732_000_100))
    first = catalog.ingest(batch)
    assert len(first.new) == 2
    before = dump(catalog)
    again = catalog.ingest(
        images(b("r1", {"us-east-1": E1, "us-west-2": W1}), b("r2", {"us-east-1": E2}, build_time=1_732_000_100))
    )
    assert (len(again.new), len(again.updated), len(again.unchanged)) == (0, 0, 2)
    assert dump(catalog) == before
    assert catalog.counts() == {"images": 2, "artifacts": 3, "events": 2}


def test_new_images_start_in_candidate_and_active(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1})))
    [image] = catalog.list()
    assert (image.channel, image.status, image.deprecate_at) == ("candidate", "active", None)
    assert image.created_at and image.updated_at
    [event] = catalog.history(image.id)
    assert event.action == "ingested" and event.detail["digest"] == image.digest


def test_a_later_copy_adds_a_region(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1})))
    result = catalog.ingest(images(b("r1", {"us-east-1": E1, "us-west-2": W1})))
    assert len(result.updated) == 1
    [image] = catalog.list()
    assert image.regions == ("us-east-1", "us-west-2")
    assert [e.action for e in catalog.history(image.id)] == ["ingested", "region-added"]


def test_conflict_rolls_back_the_whole_batch(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1}, kubelet_version="1.31.2")))
    before = dump(catalog)
    batch = images(b("r9", {"us-east-1": E3}), b("r1", {"us-east-1": E1}, kubelet_version="1.31.9"))
    with pytest.raises(ConflictError, match=r"already catalogued .* different content"):
        catalog.ingest(batch)
    assert dump(catalog) == before  # r9, inserted before the conflict, is gone too


def test_an_ami_of_another_build_is_a_conflict(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1})))
    catalog.ingest(images(b("r2", {"us-east-1": E2})))
    before = dump(catalog)
    with pytest.raises(ConflictError, match=r"us-east-1:ami-\w+ already recorded as nf-\w+, build packer:r2:node"):
        catalog.ingest(images(b("r3", {"us-east-1": E2, "us-west-2": W2})))
    with pytest.raises(ConflictError, match="maps onto several catalogued images"):
        catalog.ingest(images(b("r1", {"us-east-1": E1, "us-west-2": W1})) + images(b("r2", {"us-east-1": E1})))
    assert dump(catalog) == before


def test_resolve_by_id_prefix_ami_and_name(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1, "us-west-2": W1}, image_name="team-node-1")))
    [image] = catalog.list()
    assert catalog.resolve(image.id).id == image.id
    assert catalog.resolve(image.id[:7]).id == image.id
    assert catalog.resolve(W1).id == image.id
    assert catalog.resolve("team-node-1").id == image.id
    with pytest.raises(NotFoundError, match="no image matches 'ami-0000000000000000f'"):
        catalog.resolve("ami-0000000000000000f")
    with pytest.raises(NotFoundError):
        catalog.resolve("nf-ffffffffffff")


def test_ambiguous_name(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1}, image_name="same"), b("r2", {"us-east-1": E2}, image_name="same")))
    with pytest.raises(InputError, match="matches 2 images"):
        catalog.resolve("same")


def test_list_filters(catalog: Catalog) -> None:
    catalog.ingest(
        images(
            b("r1", {"us-east-1": E1}, kubernetes_version="1.30", build_time=1),
            b("r2", {"us-west-2": W1}, arch="arm64", build_time=2),
            b("r3", {"us-east-1": E2}, os="al2", build_time=3),
        )
    )
    assert [i.build_time for i in catalog.list()] == [3, 2, 1]
    assert [i.build_time for i in catalog.list(ImageFilter(kubernetes_version="1.30"))] == [1]
    assert [i.build_time for i in catalog.list(ImageFilter(arch="arm64"))] == [2]
    assert [i.build_time for i in catalog.list(ImageFilter(os="al2"))] == [3]
    assert [i.build_time for i in catalog.list(ImageFilter(region="us-east-1"))] == [3, 1]
    assert [i.build_time for i in catalog.list(ImageFilter(limit=1))] == [3]
    catalog.set_channel(catalog.resolve(W1).id, "stable", action="promoted", reason="ok")
    assert [i.build_time for i in catalog.list(ImageFilter(channel="stable"))] == [2]
    catalog.deprecate(catalog.resolve(E1).id, "2000-01-01T00:00:00Z", reason="old")
    assert [i.build_time for i in catalog.list(ImageFilter(status="deprecated"))] == [1]


def promote_all(catalog: Catalog) -> None:
    for image in catalog.list():
        catalog.set_channel(image.id, "stable", action="promoted", reason="test")


def test_latest_is_newest_usable_in_region_and_channel(catalog: Catalog) -> None:
    catalog.ingest(
        images(
            b("old", {"us-east-1": E1, "us-west-2": W1}, build_time=100),
            b("new", {"us-east-1": E2}, build_time=200),
            b("arm", {"us-east-1": E3}, arch="arm64", build_time=300),
        )
    )
    query = {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64", "channel": "stable"}
    assert catalog.latest(region="us-east-1", **query) is None  # all still candidates
    assert catalog.latest(region="us-east-1", **{**query, "channel": "candidate"})[1].artifact_id == E2
    promote_all(catalog)
    assert catalog.latest(region="us-east-1", **query)[1].artifact_id == E2
    assert catalog.latest(region="us-west-2", **query)[1].artifact_id == W1
    assert catalog.latest(region="us-east-1", **{**query, "arch": "arm64"})[1].artifact_id == E3
    assert catalog.latest(region="eu-west-1", **query) is None

    newest = catalog.resolve(E2).id
    catalog.deprecate(newest, "2999-01-01T00:00:00Z", reason="replaced soon")
    assert catalog.latest(region="us-east-1", **query)[1].artifact_id == E2
    catalog.deprecate(newest, "2001-01-01T00:00:00Z", reason="replaced")
    assert catalog.latest(region="us-east-1", **query)[1].artifact_id == E1

    catalog.set_artifact_state(catalog.resolve(E1).id, "us-east-1", "retired", action="region-retired")
    assert catalog.latest(region="us-east-1", **query) is None
    assert catalog.latest(region="us-west-2", **query)[1].artifact_id == W1


def test_latest_breaks_build_time_ties_by_insertion(catalog: Catalog) -> None:
    catalog.ingest(images(b("a", {"us-east-1": E1}, build_time=5)))
    catalog.ingest(images(b("b", {"us-east-1": E2}, build_time=5)))
    found = catalog.latest(
        kubernetes_version="1.31", os="al2023", arch="x86_64", region="us-east-1", channel="candidate"
    )
    assert found is not None and found[1].artifact_id == E2


def test_latest_and_owner_lookups_use_indexes(catalog: Catalog) -> None:
    query = ("r", "1.31", "al2023", "x", "s", "")
    plan = " | ".join(row[3] for row in catalog.conn.execute("EXPLAIN QUERY PLAN " + LATEST_SQL, query))
    # One descent of the offers key (region, version, os, arch, channel) then newest first: a miss is as cheap.
    key = "region=? AND kubernetes_version=? AND os=? AND arch=? AND channel=?"
    assert f"SEARCH offers USING PRIMARY KEY ({key})" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the key gives the order
    newest = " | ".join(
        row[3]
        for row in catalog.conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM images ORDER BY build_time DESC, rowid DESC LIMIT 20"
        )
    )
    assert "images_built" in newest and "TEMP B-TREE" not in newest  # `list --limit 20` reads 20 rows
    owner_plan = catalog.conn.execute(
        "EXPLAIN QUERY PLAN SELECT image_id FROM artifacts WHERE region = ? AND artifact_id = ?"
        " UNION ALL SELECT image_id FROM artifacts WHERE region = ? AND artifact_id = ?",
        ("a", "b", "c", "d"),
    ).fetchall()
    assert all("SCAN" not in row[3] for row in owner_plan)


def test_promote_demote_with_reason_and_history(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1})))
    image_id = catalog.list()[0].id
    assert catalog.set_channel(image_id, "stable", action="promoted", reason="soaked 7 days").channel == "stable"
    assert catalog.set_channel(image_id, "stable", action="promoted", reason="again").channel == "stable"  # no-op
    catalog.set_channel(image_id, "candidate", action="demoted", reason="CVE-2024-1")
    events = catalog.history(image_id)
    assert [(e.action, e.detail.get("from"), e.detail.get("to"), e.detail.get("reason")) for e in events[1:]] == [
        ("promoted", "candidate", "stable", "soaked 7 days"),
        ("demoted", "stable", "candidate", "CVE-2024-1"),
    ]
    assert all(e.at.endswith("Z") and e.actor for e in events)
    with pytest.raises(InputError, match="needs a reason"):
        catalog.set_channel(image_id, "stable", action="promoted", reason=" ")
    with pytest.raises(InputError, match="channel 'Stable!'"):
        catalog.set_channel(image_id, "Stable!", action="promoted", reason="x")


def test_retired_when_the_last_region_is_retired(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1, "us-west-2": W1})))
    image_id = catalog.list()[0].id
    assert catalog.set_artifact_state(image_id, "us-east-1", "retired", action="region-retired").status == "active"
    assert catalog.set_artifact_state(image_id, "us-west-2", "retired", action="region-retired").status == "retired"
    assert [e.action for e in catalog.history(image_id)][-2:] == ["region-retired", "retired"]
    with pytest.raises(RefusedError, match="only active images change channel"):
        catalog.set_channel(image_id, "stable", action="promoted", reason="x")
    with pytest.raises(RefusedError, match="already retired"):
        catalog.deprecate(image_id, "2030-01-01T00:00:00Z", reason="x")
    with pytest.raises(NotFoundError, match="no copy in eu-west-1"):
        catalog.set_artifact_state(image_id, "eu-west-1", "retired", action="region-retired")


def test_deprecate_records_date_and_is_idempotent(catalog: Catalog) -> None:
    catalog.ingest(images(b("r1", {"us-east-1": E1})))
    image_id = catalog.list()[0].id
    catalog.deprecate(image_id, "2030-01-01T00:00:00Z", reason="EOL")
    catalog.deprecate(image_id, "2030-01-01T00:00:00Z", reason="EOL")
    image = catalog.get(image_id)
    assert (image.status, image.deprecate_at) == ("deprecated", "2030-01-01T00:00:00Z")
    assert [e.action for e in catalog.history(image_id)] == ["ingested", "deprecated"]


def test_history_limit_keeps_the_latest(catalog: Catalog) -> None:
    catalog.ingest(images(*(b(f"r{n}", {"us-east-1": f"ami-0a{n:015x}"}) for n in range(5))))
    assert [e.seq for e in catalog.history(limit=2)] == [4, 5]


def test_a_large_ingest_commits_in_chunks_and_a_late_conflict_keeps_the_earlier_ones(catalog: Catalog) -> None:
    catalog.ingest(images(b("held", {"us-east-1": "ami-0c000000000000009"})))
    batch = images(*(b(f"r{n}", {"us-east-1": f"ami-0d{n:015x}"}) for n in range(3)))
    result = catalog.ingest(batch, chunk_seconds=0)  # every build its own transaction
    assert (len(result.new), result.transactions) == (3, 3)
    clash = images(
        b("s1", {"us-east-1": "ami-0e000000000000001"}),
        b("s2", {"us-east-1": "ami-0e000000000000002"}),
        b("s3", {"us-east-1": "ami-0c000000000000009"}),  # the AMI of build "held"
    )
    with pytest.raises(ConflictError, match=r"the 2 build\(s\) before it are recorded; fix this one and ingest again"):
        catalog.ingest(clash, chunk_seconds=0)
    assert {i.build_key for i in catalog.list()} >= {"packer:s1:node", "packer:s2:node"}
    with pytest.raises(ConflictError) as whole:  # a batch that fits one chunk stays all or nothing
        catalog.ingest(
            images(b("t1", {"us-east-1": "ami-0f000000000000001"}), b("t2", {"us-east-1": "ami-0c000000000000009"}))
        )
    assert "before it are recorded" not in str(whole.value)
    assert "packer:t1:node" not in {i.build_key for i in catalog.list()}
