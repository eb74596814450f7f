"""The AWS backend against a real moto_server: SSM publish, EC2 tag discovery, retire, deprecation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_helpers import register

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog import synthetic
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.deprecation import deprecate_in_aws
from nodeforge.catalog.discover import discover_region
from nodeforge.catalog.errors import AwsError, RefusedError
from nodeforge.catalog.manifest import parse_manifest
from nodeforge.catalog.publish import publish
from nodeforge.catalog.retire import retire, retire_targets
from nodeforge.catalog.store import Catalog
from nodeforge.catalog.tags import image_tags

ROOT = "/nodeforge/team-a/1.31/al2023/x86_64"


def ingest(catalog: Catalog, *builds: dict) -> list[str]:
    result = catalog.ingest(parse_manifest(json.dumps(synthetic.manifest(list(builds))), source="m.json"))
    return result.new


@pytest.fixture
def fleet(aws: AwsContext, catalog: Catalog) -> dict[str, str]:
    """Two builds: 'old' in us-east-1 + us-west-2, 'new' in us-east-1 only; 'new' promoted to stable."""
    amis = {
        "old-east": register(aws, "us-east-1", "node-old"),
        "old-west": register(aws, "us-west-2", "node-old"),
        "new-east": register(aws, "us-east-1", "node-new"),
    }
    old, new = ingest(
        catalog,
        synthetic.build(
            run="r1", amis={"us-east-1": amis["old-east"], "us-west-2": amis["old-west"]}, kubelet_version="1.31.2"
        ),
        synthetic.build(
            run="r2", amis={"us-east-1": amis["new-east"]}, build_time=1_732_100_000, kubelet_version="1.31.3"
        ),
    )
    catalog.set_channel(new, "stable", action="promoted", reason="soaked")
    return {**amis, "old": old, "new": new}


def test_publish_ssm_parameters_per_region_and_channel(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    reports = publish(catalog, aws, "team-a", ["us-east-1", "us-west-2"])
    east = awsapi.get_parameters(aws, "us-east-1", "/nodeforge/team-a")
    assert east[f"{ROOT}/stable/image_id"] == fleet["new-east"]
    assert east[f"{ROOT}/stable/catalog_id"] == fleet["new"]
    assert east[f"{ROOT}/candidate/image_id"] == fleet["old-east"]
    assert east[f"{ROOT}/stable/image_name"].startswith("node-1.31-al2023-x86_64-")
    west = awsapi.get_parameters(aws, "us-west-2", "/nodeforge/team-a")
    assert west == {
        f"{ROOT}/candidate/image_id": fleet["old-west"],
        f"{ROOT}/candidate/image_name": east[f"{ROOT}/candidate/image_name"],
        f"{ROOT}/candidate/catalog_id": fleet["old"],
    }
    assert [len(r.put) for r in reports] == [6, 3]
    assert sorted(reports[0].tagged) == sorted([fleet["old-east"], fleet["new-east"]])
    tags = awsapi.tags_of(awsapi.images_by_id(aws, "us-east-1", [fleet["new-east"]])[fleet["new-east"]])
    assert tags["nodeforge:channel"] == "stable"
    assert tags["nodeforge:kubelet_version"] == "1.31.3"
    assert tags["nodeforge:catalog_id"] == fleet["new"]
    assert [e.action for e in catalog.history()][-2:] == ["published", "published"]


def test_publish_again_changes_nothing_then_follows_the_catalog(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    publish(catalog, aws, "team-a", ["us-east-1"])
    aws.client("ssm", "us-east-1").put_parameter(Name="/nodeforge/team-a/notes", Value="keep me", Type="String")
    events = len(catalog.history())
    [again] = publish(catalog, aws, "team-a", ["us-east-1"])
    assert (again.put, again.deleted, again.tagged, again.unchanged) == ([], [], [], 6)
    assert len(catalog.history()) == events

    catalog.set_channel(fleet["new"], "candidate", action="demoted", reason="regression")
    [dry] = publish(catalog, aws, "team-a", ["us-east-1"], dry_run=True)
    assert len(dry.deleted) == 3 and len(dry.put) == 3
    assert awsapi.get_parameters(aws, "us-east-1", "/nodeforge/team-a")[f"{ROOT}/stable/image_id"] == fleet["new-east"]

    [real] = publish(catalog, aws, "team-a", ["us-east-1"])
    params = awsapi.get_parameters(aws, "us-east-1", "/nodeforge/team-a")
    assert f"{ROOT}/stable/image_id" not in params  # no stable image any more
    assert params[f"{ROOT}/candidate/image_id"] == fleet["new-east"]
    assert params["/nodeforge/team-a/notes"] == "keep me"  # not ours: untouched
    assert real.deleted == [f"{ROOT}/stable/{leaf}" for leaf in ("catalog_id", "image_id", "image_name")]


def test_discover_rebuilds_a_catalog_from_tags(aws: AwsContext, catalog: Catalog, fleet: dict, tmp_path: Path) -> None:
    publish(catalog, aws, "team-a", ["us-east-1", "us-west-2"])
    register(aws, "us-east-1", "not-ours", {"team": "x"})
    with Catalog.open(tmp_path / "other.db") as other:
        east = discover_region(other, aws, "us-east-1")
        west = discover_region(other, aws, "us-west-2")
        assert (east.found, len(east.new), west.found, len(west.updated)) == (2, 2, 1, 1)
        for image_id in (fleet["old"], fleet["new"]):
            mine, theirs = catalog.get(image_id), other.get(image_id)
            assert (theirs.digest, theirs.channel, theirs.build_key, theirs.regions) == (
                mine.digest,
                mine.channel,
                mine.build_key,
                mine.regions,
            )
            assert theirs.artifacts[0].account_id == "123456789012"
        again = discover_region(other, aws, "us-east-1")
        assert (again.new, again.updated, sorted(again.unchanged)) == ([], [], sorted([fleet["old"], fleet["new"]]))


def test_discover_a_copy_only_once_it_is_tagged(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    publish(catalog, aws, "team-a", ["us-east-1"])
    copy = aws.client("ec2", "eu-west-1").copy_image(
        Name="node-new", SourceImageId=fleet["new-east"], SourceRegion="us-east-1"
    )["ImageId"]
    assert discover_region(catalog, aws, "eu-west-1").found == 0  # copy_image copies no tags
    awsapi.set_tags(aws, "eu-west-1", copy, image_tags(catalog.get(fleet["new"])))
    report = discover_region(catalog, aws, "eu-west-1")
    assert report.updated == [fleet["new"]]
    assert catalog.get(fleet["new"]).artifact("eu-west-1").artifact_id == copy
    assert catalog.history(fleet["new"])[-1].action == "region-added"


def test_discover_skips_bad_tags_and_marks_missing_amis(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    bad = register(aws, "us-east-1", "bad", {"nodeforge:kubernetes_version": "1.31", "nodeforge:os": "al2023"})
    aws.client("ec2", "us-east-1").deregister_image(ImageId=fleet["old-east"])
    report = discover_region(catalog, aws, "us-east-1")
    assert report.skipped == [f"us-east-1:{bad}: tag nodeforge:arch missing"]
    assert report.missing == [fleet["old-east"]]
    assert catalog.get(fleet["old"]).artifact("us-east-1").state == "missing"
    query = {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64", "region": "us-east-1"}
    assert catalog.latest(channel="candidate", **query) is None
    assert catalog.get(fleet["old"]).status == "active"  # us-west-2 still has it


def test_discover_first_then_the_manifest_completes_the_record(aws: AwsContext, catalog: Catalog) -> None:
    ami = register(
        aws,
        "us-east-1",
        "handmade",
        {"nodeforge:kubernetes_version": "1.30", "nodeforge:os": "al2", "nodeforge:arch": "amd64"},
    )
    [found] = discover_region(catalog, aws, "us-east-1").new
    assert catalog.get(found).build_key == f"ec2:us-east-1:{ami}"
    result = catalog.ingest(
        parse_manifest(
            json.dumps(
                synthetic.manifest(
                    [
                        synthetic.build(
                            run="r7",
                            amis={"us-east-1": ami},
                            kubernetes_version="1.30",
                            os="al2",
                            runc_version="1.1.15",
                        )
                    ]
                )
            ),
            source="m.json",
        )
    )
    assert result.updated == [found]
    record = catalog.get(found)
    assert (record.build_key, record.runc_version, record.origin) == ("packer:r7:node", "1.1.15", "m.json")


def test_retire_deregisters_and_deletes_snapshots_per_region(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    image = catalog.get(fleet["old"])
    snapshots = {
        region: [
            m["Ebs"]["SnapshotId"]
            for m in awsapi.images_by_id(aws, region, [ami])[ami]["BlockDeviceMappings"]
            if "Ebs" in m
        ]
        for region, ami in (("us-east-1", fleet["old-east"]), ("us-west-2", fleet["old-west"]))
    }
    results = retire(catalog, aws, image, retire_targets(image, None, force=False), reason="EOL")
    assert [(r.region, r.outcome, r.snapshots) for r in results] == [
        ("us-east-1", "deregistered", snapshots["us-east-1"]),
        ("us-west-2", "deregistered", snapshots["us-west-2"]),
    ]
    assert awsapi.images_by_id(aws, "us-east-1", [fleet["old-east"]]) == {}
    west_snapshots = aws.client("ec2", "us-west-2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert not {s["SnapshotId"] for s in west_snapshots} & set(snapshots["us-west-2"])
    assert catalog.get(fleet["old"]).status == "retired"
    actions = [(e.action, e.region) for e in catalog.history(fleet["old"])]
    assert actions[-3:] == [("region-retired", "us-east-1"), ("region-retired", "us-west-2"), ("retired", None)]
    assert catalog.history(fleet["old"])[-2].detail["reason"] == "EOL"


def test_retire_refuses_stable_unless_forced(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    image = catalog.get(fleet["new"])
    with pytest.raises(RefusedError, match="still in channel stable"):
        retire_targets(image, None, force=False)
    assert awsapi.images_by_id(aws, "us-east-1", [fleet["new-east"]])
    results = retire(catalog, aws, image, retire_targets(image, None, force=True), reason="forced", forced=True)
    assert results[0].outcome == "deregistered"
    assert catalog.history(fleet["new"])[-2].detail["forced"] is True


def test_retire_an_ami_already_gone_and_a_failing_region(
    aws: AwsContext, catalog: Catalog, fleet: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.client("ec2", "us-east-1").deregister_image(ImageId=fleet["old-east"])
    real = awsapi.deregister_with_snapshots

    def flaky(aws_: AwsContext, region: str, image_id: str) -> tuple[bool, list[str]]:
        if region == "us-west-2":
            raise AwsError("us-west-2: DeregisterImage: Throttling: slow down")
        return real(aws_, region, image_id)

    monkeypatch.setattr(awsapi, "deregister_with_snapshots", flaky)
    image = catalog.get(fleet["old"])
    results = retire(catalog, aws, image, retire_targets(image, None, force=False), reason="EOL")
    assert [(r.region, r.outcome) for r in results] == [("us-east-1", "already-gone"), ("us-west-2", "failed")]
    assert "Throttling" in (results[1].error or "")
    after = catalog.get(fleet["old"])
    assert [(a.region, a.state) for a in after.artifacts] == [("us-east-1", "retired"), ("us-west-2", "available")]
    assert after.status == "active"  # retry later: only us-west-2 is left
    assert retire_targets(after, None, force=False) == [("us-west-2", fleet["old-west"])]


def test_moto_has_no_image_deprecation_and_we_say_so(aws: AwsContext, catalog: Catalog, fleet: dict) -> None:
    when = datetime(2031, 1, 1, tzinfo=UTC)
    assert awsapi.enable_deprecation(aws, "us-east-1", fleet["old-east"], when) is False
    image = catalog.deprecate(fleet["old"], "2031-01-01T00:00:00Z", reason="EOL")
    results = deprecate_in_aws(aws, image, when)
    assert [(r.region, r.outcome) for r in results] == [("us-east-1", "tagged-only"), ("us-west-2", "tagged-only")]
    tags = awsapi.tags_of(awsapi.images_by_id(aws, "us-west-2", [fleet["old-west"]])[fleet["old-west"]])
    assert (tags["nodeforge:status"], tags["nodeforge:deprecate_at"]) == ("deprecated", "2031-01-01T00:00:00Z")


def test_aws_errors_name_region_and_call(aws: AwsContext) -> None:
    with (
        pytest.raises(AwsError, match=r"us-east-1: DeregisterImage ami-0000000000000000a: InvalidAMIID"),
        awsapi.aws_call("us-east-1", "DeregisterImage ami-0000000000000000a"),
    ):
        aws.client("ec2", "us-east-1").deregister_image(ImageId="ami-0000000000000000a")


def test_discover_ignores_the_amazon_catalogue(aws: AwsContext, catalog: Catalog) -> None:
    assert awsapi.describe_images(aws, "us-east-1", owners=["amazon"], filters={"name": ["al2023-ami-*"]})
    report = discover_region(catalog, aws, "us-east-1")
    assert (report.found, report.new) == (0, [])
