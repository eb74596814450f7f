"""Importing amazon-eks-ami's public AMIs from their SSM parameters, then comparing ours with AWS's.

moto has no /aws/service/eks/... parameters and (like AWS) refuses PutParameter under /aws, so this test runs
moto in-process and registers the parameters in its SSM backend directly, named and laid out as AWS publishes
them; everything else goes through real boto3 calls to that server on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.ssm.models import Parameter, ssm_backends
from typer.testing import CliRunner

from nodeforge.catalog import cli, synthetic
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.motoserver import DUMMY_CREDENTIALS

ACCOUNT = "123456789012"
ROOT = "/aws/service/eks/optimized-ami"
runner = CliRunner()


@pytest.fixture(scope="module")
def inprocess_moto() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(inprocess_moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AwsContext:
    for key, value in {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": inprocess_moto}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return AwsContext(endpoint_url=inprocess_moto)


def aws_parameter(region: str, name: str, value: str, data_type: str = "text") -> None:
    """A public parameter as AWS holds it (moto's API refuses names under /aws, as AWS does)."""
    ssm_backends[ACCOUNT][region]._parameters[name].append(
        Parameter(
            account_id=ACCOUNT,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.now(UTC),
            version=1,
            data_type=data_type,
        )
    )


def publish_eks_release(aws: AwsContext, region: str, ami_type: str, name: str, arch: str, kubelet: str) -> str:
    """An EKS optimized AMI the way amazon-eks-ami builds and AWS publishes it: name, tags, SSM parameters."""
    ec2 = aws.client("ec2", region)
    ami = ec2.register_image(Name=name, Architecture=arch, RootDeviceName="/dev/xvda")["ImageId"]
    tags = {
        "Name": name,
        "kubernetes": f"{kubelet}/2024-11-08/bin/linux/{arch}",
        "containerd_version": "1.7.23",
        "source_ami_id": "ami-0123456789abcdef0",
        "ssm_agent_version": "3.3.987.0",
    }
    ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    version = ".".join(kubelet.split(".")[:2])
    release = f"{kubelet}-20241109"
    base = f"{ROOT}/{version}/{ami_type}"
    aws_parameter(region, f"{base}/recommended/image_id", ami, "aws:ec2:image")
    aws_parameter(region, f"{base}/recommended/image_name", name)
    aws_parameter(region, f"{base}/recommended/release_version", release)
    aws_parameter(
        region,
        f"{base}/recommended",
        json.dumps({"schema_version": "3", "image_id": ami, "image_name": name, "release_version": release}),
    )
    aws_parameter(region, f"{base}/{name}/image_id", ami, "aws:ec2:image")
    return ami


def run(db: Path, *args: str, code: int = 0) -> Any:
    result = runner.invoke(cli.app, [*args, "--db", str(db), "--output", "json"])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def test_import_eks_optimized_amis_then_latest_and_diff(aws_env: AwsContext, tmp_path: Path) -> None:
    name = "amazon-eks-node-al2023-arm64-standard-1.31-v20241109"
    theirs = publish_eks_release(aws_env, "us-west-2", "amazon-linux-2023/arm64/standard", name, "arm64", "1.31.2")
    al2 = publish_eks_release(
        aws_env, "us-west-2", "amazon-linux-2", "amazon-eks-node-1.31-v20241109", "x86_64", "1.31.2"
    )
    publish_eks_release(
        aws_env,
        "us-west-2",
        "amazon-linux-2023/x86_64/nvidia",
        "amazon-eks-node-al2023-x86_64-nvidia-1.31-v20241109",
        "x86_64",
        "1.31.2",
    )
    db = tmp_path / "catalog.db"
    ours = synthetic.build(
        run="ours",
        amis={"us-west-2": "ami-0f000000000000001"},
        arch="arm64",
        kubelet_version="1.31.3",
        containerd_version="1.7.23",
    )
    (tmp_path / "m.json").write_text(json.dumps(synthetic.manifest([ours])))
    run(db, "ingest", str(tmp_path / "m.json"), "--no-ec2")

    report = run(db, "import-eks", "-k", "1.31", "--region", "us-west-2")
    [region] = report["regions"]
    assert len(region["new"]) == 2
    assert any("nvidia" in reason for reason in region["skipped"])  # the accelerated variant, said

    latest = run(
        db,
        "latest",
        "-k",
        "1.31",
        "--os",
        "al2023",
        "--arch",
        "arm64",
        "--region",
        "us-west-2",
        "--channel",
        "eks-optimized",
    )
    assert (latest["image_id"], latest["name"]) == (theirs, name)
    aws_al2 = run(db, "latest", "-k", "1.31", "--os", "al2", "--region", "us-west-2", "--channel", "eks-optimized")
    assert aws_al2["image_id"] == al2
    ours_latest = run(
        db,
        "latest",
        "-k",
        "1.31",
        "--os",
        "al2023",
        "--arch",
        "arm64",
        "--region",
        "us-west-2",
        "--channel",
        "candidate",
    )
    diff = run(db, "diff", ours_latest["catalog_id"], theirs)
    assert diff["changed"]["kubelet_version"] == {"a": "1.31.3", "b": "1.31.2"}
    assert diff["same"]["containerd_version"] == "1.7.23"
    assert diff["changed"]["release_version"] == {"a": None, "b": "1.31.2-20241109"}

    again = run(db, "import-eks", "-k", "1.31", "--region", "us-west-2")
    assert (again["regions"][0]["new"], len(again["regions"][0]["unchanged"])) == ([], 2)
