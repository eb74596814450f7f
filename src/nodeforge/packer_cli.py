"""`nodeforge build-vars`: check the inputs of an EKS node AMI build and print its `packer build` command.

Mount into the main CLI with ``app.command("build-vars")(packer_cli.build_vars)`` or
``app.add_typer(packer_cli.app)``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from nodeforge.packer_vars import (
    ARCH_CHOICES,
    OS_CHOICES,
    ROOT_VOLUME_TYPES,
    SSH_INTERFACES,
    BuildRequest,
    PackerVarsError,
    parse_filters,
    parse_region_keys,
    plan_build,
)
from nodeforge.paths import repo_root

app = typer.Typer(help="Packer inputs of the EKS node AMI build.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Packer inputs of the EKS node AMI build (packer/eks-node)."""


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated options, each possibly comma-separated, as one tuple (empty items dropped)."""
    return tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())


@app.command("build-vars")
def build_vars(
    kubernetes_version: Annotated[
        str,
        typer.Argument(
            metavar="KUBERNETES_VERSION",
            help="Kubernetes minor version, e.g. 1.31 (one of packer/kubernetes/*.pkrvars.hcl)",
        ),
    ],
    os: Annotated[str, typer.Option("--os", help=f"Base OS: {', '.join(OS_CHOICES)}")] = "al2023",
    arch: Annotated[str, typer.Option("--arch", help=f"CPU architecture: {', '.join(ARCH_CHOICES)}")] = "x86_64",
    region: Annotated[str, typer.Option(help="Build region, e.g. us-west-2")] = "us-west-2",
    ami_regions: Annotated[
        list[str] | None, typer.Option("--ami-regions", help="Copy the AMI to these regions (repeat or comma-separate)")
    ] = None,
    ami_users: Annotated[
        list[str] | None, typer.Option("--ami-users", help="Share with these AWS account ids (needs --kms-key-id)")
    ] = None,
    kms_key_id: Annotated[str, typer.Option(help="KMS key for the volume and AMI (default: aws/ebs key)")] = "",
    region_kms_key_id: Annotated[
        list[str] | None, typer.Option("--region-kms-key-id", help="REGION=KEY for a copy region (repeat)")
    ] = None,
    root_volume_size: Annotated[int, typer.Option(help="Root volume GiB (20-1024)")] = 20,
    root_volume_iops: Annotated[int, typer.Option(help="gp3 IOPS (3000-16000)")] = 3000,
    root_volume_throughput: Annotated[int, typer.Option(help="gp3 MiB/s (125-1000)")] = 125,
    instance_type: Annotated[str, typer.Option(help="Build instance type (default m6i.large / m6g.large)")] = "",
    source_ami_id: Annotated[str, typer.Option(help="Start from this AMI instead of the newest Amazon Linux")] = "",
    containerd_package_version: Annotated[
        str, typer.Option(help="Pin and lock containerd (e.g. 1.7.27); default the OS's")
    ] = "",
    artifact_source: Annotated[str, typer.Option(help="EKS artifact URL or folder (default the EKS bucket)")] = "",
    deprecate_at: Annotated[str, typer.Option(help="Deprecate the AMI at this RFC 3339 time")] = "",
    subnet_id: Annotated[str, typer.Option(help="Subnet of the build instance (default VPC's otherwise)")] = "",
    git_commit: Annotated[str, typer.Option(help="Commit recorded in tags and manifest (default: this checkout)")] = "",
    kubelet_version: Annotated[
        str,
        typer.Option(
            help="latest: list the artifact source for the minor's newest build and pin it (default: vars file)"
        ),
    ] = "",
    root_volume_type: Annotated[str, typer.Option(help=f"Root volume type: {', '.join(ROOT_VOLUME_TYPES)}")] = "gp3",
    ssh_interface: Annotated[
        str, typer.Option(help=f"How Packer reaches the instance: {', '.join(i for i in SSH_INTERFACES if i)}")
    ] = "",
    iam_instance_profile: Annotated[str, typer.Option(help="Instance profile (needed for session_manager)")] = "",
    associate_public_ip_address: Annotated[
        str, typer.Option(help="true or false: public IP for the build instance (default: the subnet's)")
    ] = "",
    security_group_ids: Annotated[
        list[str] | None, typer.Option("--security-group-ids", help="Existing security groups (repeat/comma)")
    ] = None,
    ssh_source_cidrs: Annotated[
        list[str] | None, typer.Option("--ssh-source-cidrs", help="CIDRs the temporary group admits SSH from")
    ] = None,
    subnet_filter: Annotated[
        list[str] | None, typer.Option("--subnet-filter", help="NAME=VALUE DescribeSubnets filter (repeat)")
    ] = None,
    vpc_filter: Annotated[
        list[str] | None, typer.Option("--vpc-filter", help="NAME=VALUE DescribeVpcs filter (repeat)")
    ] = None,
    ec2_endpoint: Annotated[str, typer.Option(help="Custom EC2 endpoint (https URL)")] = "",
    source_ami_owners: Annotated[
        list[str] | None, typer.Option("--source-ami-owners", help="Source AMI owners (default amazon)")
    ] = None,
    output: Annotated[OutputFormat, typer.Option(help="text: the command line; json: it and the variables")] = (
        OutputFormat.text
    ),
) -> None:
    """Check the inputs of an EKS node AMI build and print the `packer build` command that runs it."""
    root = repo_root()
    try:
        request = BuildRequest(
            kubernetes_version=kubernetes_version,
            os=os,
            arch=arch,
            region=region,
            ami_regions=_split(ami_regions),
            ami_users=_split(ami_users),
            kms_key_id=kms_key_id,
            region_kms_key_ids=parse_region_keys(_split(region_kms_key_id)),
            root_volume_size=root_volume_size,
            root_volume_iops=root_volume_iops,
            root_volume_throughput=root_volume_throughput,
            instance_type=instance_type,
            source_ami_id=source_ami_id,
            containerd_package_version=containerd_package_version,
            artifact_source=artifact_source,
            deprecate_at=deprecate_at,
            subnet_id=subnet_id,
            git_commit=git_commit,
            kubelet_version=kubelet_version,
            root_volume_type=root_volume_type,
            ssh_interface=ssh_interface,
            iam_instance_profile=iam_instance_profile,
            associate_public_ip_address=associate_public_ip_address,
            security_group_ids=_split(security_group_ids),
            ssh_source_cidrs=_split(ssh_source_cidrs),
            subnet_filter=parse_filters(tuple(subnet_filter or ()), "--subnet-filter"),
            vpc_filter=parse_filters(tuple(vpc_filter or ()), "--vpc-filter"),
            ec2_endpoint=ec2_endpoint,
            source_ami_owners=_split(source_ami_owners),
        )
        plan = plan_build(request, root)
    except PackerVarsError as exc:
        raise typer.BadParameter(exc.message, param_hint=exc.option) from exc
    relative_to = _cwd_base(root)
    if output is OutputFormat.json:
        typer.echo(json.dumps(plan.as_dict(relative_to), indent=2))
        return
    typer.echo(f"# once per machine: packer init {plan.as_dict(relative_to)['template']}", err=True)
    typer.echo(plan.command_line(relative_to))


def _cwd_base(root: Path) -> Path | None:
    """Print paths relative to the working directory when the checkout is (in) it, else absolute."""
    cwd = Path.cwd().resolve()
    return cwd if root.resolve().is_relative_to(cwd) else None


@app.command("tag-images")
def tag_images_cmd(
    manifest: Annotated[Path, typer.Argument(help="The Packer manifest (packer/eks-node's manifest_path)")],
    build_id: Annotated[str, typer.Argument(help="The build's build_id (custom_data.build_id)")],
) -> None:
    """Tag the build's AMIs and snapshots, in every region, with the containerd, runc and kernel versions the image's
    component manifest recorded (packer/eks-node's last post-processor)."""
    from nodeforge.ami_tags import TagImagesError, tag_images

    try:
        tagged = tag_images(manifest, build_id)
    except TagImagesError as exc:
        typer.echo(f"tag-images: {exc}", err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # botocore: credentials, permissions, throttling
        typer.echo(f"tag-images: tagging failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for image in tagged:
        versions = " ".join(f"{key}={value}" for key, value in image.tags.items())
        typer.echo(f"{image.region} {image.image_id} (+{len(image.snapshot_ids)} snapshots): {versions}")
