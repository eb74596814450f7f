"""`nodeforge catalog ...` through typer's CliRunner: human and JSON output, exit codes, confirmations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalog_helpers import register
from rich.console import Console
from typer.testing import CliRunner

from nodeforge.catalog import cli, synthetic
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.motoserver import MotoServer
from nodeforge.catalog.store import Catalog

E1, E2 = "ami-0e000000000000001", "ami-0e000000000000002"
W1 = "ami-0f000000000000001"
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "out", Console(width=250, no_color=True))
    monkeypatch.setattr(cli, "err", Console(width=250, no_color=True, stderr=True))


@pytest.fixture
def manifest(write_manifest: Any) -> Path:
    return write_manifest(
        [
            synthetic.build(run="r1", amis={"us-east-1": E1, "us-west-2": W1}, kubelet_version="1.31.2"),
            synthetic.build(run="r2", amis={"us-east-1": E2}, build_time=1_732_100_000, kubelet_version="1.31.3"),
        ]
    )


def run(db: Path, *args: str, input: str | None = None, code: int = 0) -> Any:
    result = runner.invoke(cli.app, [*args, "--db", str(db)], input=input)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def run_json(db: Path, *args: str, code: int = 0) -> Any:
    return json.loads(run(db, *args, "--output", "json", code=code).stdout)


def test_ingest_query_promote_flow(db: Path, manifest: Path) -> None:
    assert run_json(db, "ingest", str(manifest))["new"] == 2
    again = run(db, "ingest", str(manifest))
    assert "2 build(s) from 1 manifest(s): 0 new, 0 updated, 2 unchanged" in again.stdout

    listed = run_json(db, "list")
    assert [item["regions"]["us-east-1"]["image_id"] for item in listed] == [E2, E1]
    assert listed[1]["regions"]["us-west-2"]["image_id"] == W1
    old, new = listed[1]["id"], listed[0]["id"]

    query = ("latest", "-k", "1.31", "--os", "al2023", "--region", "us-east-1")
    missing = run_json(db, *query, code=3)
    assert "no usable image for kubernetes 1.31 al2023 x86_64 in us-east-1, stable" in missing["error"]

    promoted = run_json(db, "promote", E2, "--reason", "soaked a week")
    assert promoted == {"catalog_id": new, "from": "candidate", "to": "stable", "changed": True}
    latest = run_json(db, *query)
    assert (latest["image_id"], latest["catalog_id"], latest["channel"]) == (E2, new, "stable")
    assert E2 in run(db, *query).stdout
    assert run_json(db, *query[:-1], "us-west-2", "--channel", "candidate")["image_id"] == W1

    shown = run_json(db, "show", old)
    assert shown["components"]["kubelet_version"] == "1.31.2"
    assert "component manifest" in run(db, "show", old).stdout

    diff = run_json(db, "diff", old, new)
    assert diff["changed"] == {"kubelet_version": {"a": "1.31.2", "b": "1.31.3"}}
    assert "kubelet_version" in run(db, "diff", old, new).stdout

    demoted = run_json(db, "demote", new, "--reason", "regression")
    assert (demoted["from"], demoted["to"]) == ("stable", "candidate")
    history = run_json(db, "history", new)
    assert [e["action"] for e in history] == ["ingested", "promoted", "demoted"]
    assert history[1]["detail"]["reason"] == "soaked a week"
    assert "promoted" in run(db, "history").stdout


def test_filters_and_human_list(db: Path, manifest: Path) -> None:
    run(db, "ingest", str(manifest))
    assert [i["regions"]["us-west-2"]["image_id"] for i in run_json(db, "list", "--region", "us-west-2")] == [W1]
    assert run_json(db, "list", "--arch", "aarch64") == []
    assert len(run_json(db, "list", "--limit", "1")) == 1
    table = run(db, "list", "--status", "active").stdout
    assert E1 in table and W1 in table and "candidate" in table


def test_json_output_of_the_catalog_only_commands(db: Path, manifest: Path) -> None:
    run(db, "ingest", str(manifest))
    image = run_json(db, "list")[0]["id"]
    deprecated = run_json(db, "deprecate", image, "--at", "2031-02-03", "--catalog-only", "--reason", "EOL")
    assert deprecated == {"catalog_id": image, "deprecate_at": "2031-02-03T00:00:00Z", "regions": []}
    assert run_json(db, "retire", image, "--dry-run")["regions"] == [{"region": "us-east-1", "image_id": E2}]
    exported = run_json(db, "export", "eksctl", "-k", "1.31", "--os", "al2023", "--channel", "candidate")
    assert [doc["document"]["managedNodeGroups"][0]["ami"] for doc in exported] == [E2, W1]


def test_export_yaml(db: Path, manifest: Path) -> None:
    run(db, "ingest", str(manifest))
    run(db, "promote", E1, "--reason", "ok")
    text = run(db, "export", "karpenter", "-k", "1.31", "--os", "al2023", "--region", "us-west-2").stdout
    assert text.startswith("# region us-west-2")
    [document] = yaml.safe_load_all(text)
    assert document["spec"]["amiSelectorTerms"] == [{"id": W1}]
    by_tags = yaml.safe_load(run(db, "export", "karpenter", E1, "--by", "tags").stdout)
    assert by_tags["spec"]["amiSelectorTerms"][0]["tags"]["nodeforge:catalog_id"].startswith("nf-")


def test_a_bad_manifest_among_good_ones_writes_nothing(db: Path, manifest: Path, write_manifest: Any) -> None:
    bad = write_manifest(
        [synthetic.build(run="r9", amis={"us-east-1": "ami-0e000000000000009"}, arch="sparc")], name="bad.json"
    )
    result = run(db, "ingest", str(manifest), str(bad), code=2)
    assert f"{bad}: builds[0].custom_data.arch: unknown arch 'sparc'" in result.stderr
    assert not db.exists()
    run(db, "ingest", str(manifest))
    before = run_json(db, "list")
    failed = run_json(db, "ingest", str(bad), code=2)
    assert failed["kind"] == "ManifestError" and "builds[0].custom_data.arch" in failed["error"]
    assert run_json(db, "list") == before


def test_local_bake_manifest_with_a_rule(db: Path, tmp_path: Path) -> None:
    local = tmp_path / "local.json"
    build = synthetic.build(run="l1", amis={}, base_image="nodeforge/base:bookworm", template="local")
    build.update(builder_type="docker", artifact_id="nodeforge/node:dev1")
    for key in ("os", "arch"):
        del build["custom_data"][key]
    local.write_text(json.dumps(synthetic.manifest([build])))
    missing = run(db, "ingest", str(local), code=2)
    assert "builds[0].custom_data.os: missing" in missing.stderr and "--rule 'build=node:os=al2023'" in missing.stderr
    refused = run(db, "ingest", str(local), "--default", "os=debian12", "--default", "arch=amd64", code=2)
    assert "--rule 'build=NAME:os=debian12,arch=amd64'" in refused.stderr  # the refusal names what fixes it
    done = run_json(db, "ingest", str(local), "--rule", "build=node:os=debian12,arch=amd64")
    assert done["notes"] == [f"{local}: builds[0] (node): os, arch from --rule 'build=node:os=debian12,arch=amd64'"]
    [image] = run_json(db, "list", "--region", "local")
    assert (image["os"], image["arch"], image["regions"]["local"]["image_id"]) == (
        "debian12",
        "x86_64",
        "nodeforge/node:dev1",
    )
    assert (
        run_json(db, "latest", "-k", "1.31", "--os", "debian12", "--region", "local", "--channel", "candidate")[
            "image_id"
        ]
        == "nodeforge/node:dev1"
    )


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("list", "--arch", "sparc"), 2, "--arch 'sparc'"),
        (("list", "-k", "1.31.2"), 2, "--kubernetes-version '1.31.2'"),
        (("list", "--status", "gone"), 2, "--status 'gone'"),
        (("list", "--region", "moon-1"), 2, "--region 'moon-1'"),
        (("latest", "--os", "al2023", "--region", "us-east-1"), 2, "--kubernetes-version is required"),
        (("show", "ami-0000000000000000f"), 3, "no image matches 'ami-0000000000000000f'"),
        (("promote", E1, "--reason", "x", "--to", "Prod!"), 2, "channel 'Prod!'"),
        (("list", "--region", "us-east-7"), 2, "did you mean us-east-2, us-east-1 or us-west-2?"),
        (("retire", E1, "--region", "eu-west-1", "--yes"), 2, "has no copy there"),
        (("deprecate", E1, "--at", "soon", "--catalog-only"), 2, "--at 'soon'"),
        (("ingest", "nope.json"), 2, "nope.json: no such file"),
        (("ingest", "x.json", "--default", "os"), 2, "--default 'os': expected KEY=VALUE"),
        (("ingest", "x.json", "--rule", "os=al2023"), 2, "--rule 'os=al2023': expected build=GLOB"),
        (("export", "karpenter", "-k", "1.30", "--os", "al2023"), 3, "no usable image"),
        (("publish", "--prefix", "/bad prefix/"), 2, "--prefix 'bad prefix'"),
        (("discover", "--region", "local"), 2, "--region 'local'"),
    ],
)
def test_input_errors(db: Path, manifest: Path, args: tuple[str, ...], code: int, words: str) -> None:
    run(db, "ingest", str(manifest))
    result = run(db, *args, code=code)
    assert words in result.stderr


def test_reading_a_missing_catalog(tmp_path: Path) -> None:
    result = run(tmp_path / "none.db", "list", code=3)
    assert "none.db does not exist" in result.stderr


def test_promote_needs_a_reason(db: Path, manifest: Path) -> None:
    run(db, "ingest", str(manifest))
    result = runner.invoke(cli.app, ["promote", E1, "--db", str(db)])
    assert result.exit_code == 2 and "--reason" in result.stderr


# -- against moto ------------------------------------------------------------------------------------------


@pytest.fixture
def on_moto(aws: AwsContext, moto_server: MotoServer, write_manifest: Any, db: Path) -> dict[str, str]:
    east, west = register(aws, "us-east-1", "node-a"), register(aws, "us-west-2", "node-a")
    path = write_manifest([synthetic.build(run="m1", amis={"us-east-1": east, "us-west-2": west})], name="moto.json")
    run(db, "ingest", str(path))
    return {"east": east, "west": west, "endpoint": moto_server.url}


def test_retire_asks_first(aws: AwsContext, on_moto: dict[str, str], db: Path) -> None:
    declined = run(db, "retire", on_moto["east"], input="n\n", code=1)
    assert "Deregister us-east-1:" in declined.stderr and "aborted; nothing changed" in declined.stderr
    assert run_json(db, "show", on_moto["east"])["status"] == "active"
    assert aws.client("ec2", "us-east-1").describe_images(ImageIds=[on_moto["east"]])["Images"]

    run(db, "promote", on_moto["east"], "--reason", "ok")
    refused = run(db, "retire", on_moto["east"], "--yes", code=5)
    assert "still in channel stable" in refused.stderr and "--force" in refused.stderr

    done = run_json(db, "retire", on_moto["east"], "--force", "--reason", "EOL", "-y")
    assert done["status"] == "retired"
    assert [(r["region"], r["outcome"]) for r in done["regions"]] == [
        ("us-east-1", "deregistered"),
        ("us-west-2", "deregistered"),
    ]
    assert run_json(db, "retire", on_moto["east"], "--yes")["regions"] == []  # nothing left: no error


def test_retire_with_confirmation_yes(aws: AwsContext, on_moto: dict[str, str], db: Path) -> None:
    result = run(db, "retire", on_moto["west"], "--region", "us-west-2", input="y\n")
    assert "deregistered" in result.stdout
    image = run_json(db, "show", on_moto["west"])
    assert (image["status"], image["regions"]["us-west-2"]["state"]) == ("active", "retired")


def test_deprecate_warns_that_moto_lacks_the_api(on_moto: dict[str, str], db: Path) -> None:
    result = run(db, "deprecate", on_moto["east"], "--at", "2031-01-01", "--reason", "EOL")
    assert "does not implement EnableImageDeprecation" in result.stderr
    assert "tagged-only" in result.stdout
    events = run_json(db, "history", on_moto["east"])
    assert [e["action"] for e in events][-2:] == ["deprecated", "deprecation-applied"]


def test_publish_then_discover_into_another_catalog(on_moto: dict[str, str], db: Path, tmp_path: Path) -> None:
    run(db, "promote", on_moto["east"], "--reason", "ok")
    published = run_json(db, "publish", "--prefix", "team-a", "--endpoint-url", on_moto["endpoint"])
    assert [r["region"] for r in published["regions"]] == ["us-east-1", "us-west-2"]
    assert "/nodeforge/team-a/1.31/al2023/x86_64/stable/image_id" in published["regions"][0]["put"]
    assert "unchanged" in run(db, "publish", "--prefix", "team-a").stdout

    other = tmp_path / "other.db"
    found = run_json(other, "discover", "--region", "us-east-1", "--region", "us-west-2")
    assert [(r["region"], len(r["new"]), len(r["updated"])) for r in found["regions"]] == [
        ("us-east-1", 1, 0),
        ("us-west-2", 0, 1),
    ]
    assert (
        run_json(other, "latest", "-k", "1.31", "--os", "al2023", "--region", "us-west-2")["image_id"]
        == on_moto["west"]
    )
    table = run(db, "discover").stdout  # regions default to the catalog's
    assert "us-east-1" in table and "us-west-2" in table


def test_catalog_file_from_the_environment(db: Path, manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_CATALOG", str(db))
    result = runner.invoke(cli.app, ["ingest", str(manifest)])
    assert result.exit_code == 0
    with Catalog.open(db, create=False) as catalog:
        assert catalog.counts()["images"] == 2


def test_mounts_as_a_sub_app(db: Path, manifest: Path) -> None:
    import typer

    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """nodeforge"""

    root.add_typer(cli.app, name="catalog")
    result = runner.invoke(root, ["catalog", "ingest", str(manifest), "--db", str(db), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["new"] == 2


def test_facts_from_ec2_for_builds_without_custom_data(
    aws: AwsContext, moto_server: MotoServer, db: Path, tmp_path: Path
) -> None:
    """AMIs named and tagged the way amazon-eks-ami's template does (ami_name from its Makefile, tags Name,
    kubernetes, containerd_version, source_ami_id, ...), in a manifest without custom_data."""

    def eks_ami(region: str, name: str, arch: str, kubelet: str) -> str:
        ec2 = aws.client("ec2", region)
        ami = ec2.register_image(Name=name, Architecture=arch, RootDeviceName="/dev/xvda")["ImageId"]
        tags = {
            "Name": name,
            "created": "20241109T101112Z",
            "build_region": region,
            "source_ami_id": "ami-0123456789abcdef0",
            "source_ami_name": "al2023-ami-minimal-2023.6.20241031.0-kernel-6.1-" + arch,
            "containerd_version": "1.7.23",
            "kubernetes": f"{kubelet}/2024-11-08/bin/linux/{arch}",
            "ssm_agent_version": "3.3.987.0",
        }
        ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return ami

    arm = eks_ami("us-west-2", "amazon-eks-al2023-arm64-node-1.31-v20241109", "arm64", "1.31.2")
    x86 = eks_ami("us-west-2", "amazon-eks-node-1.30-v20241109", "x86_64", "1.30.6")  # AL2 naming
    builds = [
        {
            "name": name,
            "builder_type": "amazon-ebs",
            "files": None,
            "artifact_id": f"us-west-2:{ami}",
            "packer_run_uuid": "run-eks",
        }
        for name, ami in (("arm", arm), ("x86", x86))
    ]
    path = tmp_path / "eks.json"
    path.write_text(json.dumps({"builds": builds, "last_run_uuid": "run-eks"}))

    refused = run(db, "ingest", str(path), "--no-ec2", code=2)
    assert "builds[0].custom_data.kubernetes_version: missing" in refused.stderr and "--ec2" in refused.stderr
    done = run_json(db, "ingest", str(path), "--endpoint-url", moto_server.url)
    assert done["new"] == 2
    assert done["notes"][0].endswith(
        "builds[0] (arm): kubernetes_version, os, arch, kubelet_version, containerd_version, source_image, "
        f"image_name, build_time from EC2 us-west-2:{arm}"
    )
    [image] = run_json(db, "list", "--arch", "arm64")
    assert (image["kubernetes_version"], image["os"], image["arch"], image["name"]) == (
        "1.31",
        "al2023",
        "arm64",
        "amazon-eks-al2023-arm64-node-1.31-v20241109",
    )
    assert image["components"]["kubelet_version"] == "1.31.2"
    assert image["components"]["containerd_version"] == "1.7.23"
    assert image["build_time"] != "1970-01-01T00:00:00Z"  # CreationDate: the manifest had no build_time
    [al2] = run_json(db, "list", "--os", "al2")
    assert (al2["kubernetes_version"], al2["arch"]) == ("1.30", "x86_64")


def test_promote_into_the_channel_an_image_is_in_is_a_no_op(db: Path, manifest: Path) -> None:
    run(db, "ingest", str(manifest))
    assert run_json(db, "promote", E1, "--reason", "soaked")["changed"] is True
    events = len(run_json(db, "history", E1))
    again = run_json(db, "promote", E1, "--reason", "again")  # already at the top of candidate → stable
    assert again == {"catalog_id": again["catalog_id"], "from": "stable", "to": "stable", "changed": False}
    assert "is already in stable; nothing changed" in run(db, "promote", E1, "--reason", "again").stdout
    run(db, "deprecate", E1, "--at", "2031-01-01", "--catalog-only", "--reason", "EOL")
    assert run_json(db, "promote", E1, "--to", "stable", "--reason", "x")["changed"] is False  # even deprecated
    assert run_json(db, "demote", E2, "--reason", "x")["changed"] is False  # candidate is the bottom
    assert len(run_json(db, "history", E1)) == events + 1  # only the deprecation was recorded
