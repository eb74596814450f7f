"""Inputs of the EKS node AMI build (packer/eks-node): check them, find the Kubernetes minor's vars file, and
compose the ``packer build`` command line that bakes the image in the user's AWS account.

The checks mirror the template's variable validations (tests/unit/packer holds them to agreeing) and add the
ones Packer cannot express on one variable: copy regions against the build region, KMS keys for shared or
copied AMIs, gp3 IOPS and throughput against the volume size, instance type against arch.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from nodeforge.paths import repo_root

TEMPLATE_DIR = Path("packer") / "eks-node"
KUBERNETES_VARS_DIR = Path("packer") / "kubernetes"
VARS_SUFFIX = ".pkrvars.hcl"

OS_CHOICES = ("al2023", "al2")
ARCH_CHOICES = ("x86_64", "arm64")
# Mirrors of packer/eks-node/locals.pkr.hcl (os_settings, arch_settings, source_ami_owners).
DEFAULT_INSTANCE_TYPES = {"x86_64": "m6i.large", "arm64": "m6g.large"}
SOURCE_AMI_NAMES = {
    "al2023": "al2023-ami-minimal-2023.*-kernel-6.1-{arch}",
    "al2": "amzn2-ami-kernel-5.10-hvm-2.0.*-{arch}-gp2",
}
OS_VERSIONS = {"al2023": "2023", "al2": "2"}
SSH_USERNAMES = {"al2023": "ec2-user", "al2": "ec2-user"}
SOURCE_AMI_OWNER = "amazon"
TEMPLATE_DEFAULTS: dict[str, Any] = {
    "os": "al2023",
    "arch": "x86_64",
    "region": "us-west-2",
    "root_volume_size": 20,
    "root_volume_iops": 3000,
    "root_volume_throughput": 125,
    "root_volume_type": "gp3",
    "source_ami_owners": ["amazon"],
}

# The patterns the template's validations implement (written above each one in variables.pkr.hcl).
KUBERNETES_MINOR_RE = re.compile(r"^1\.[1-9][0-9]*$")
KUBELET_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
BUILD_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+){1,2}-[0-9]+$")
_KMS_ID = r"([0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_KMS_ALIAS = r"alias/[A-Za-z0-9/_-]+"
# What the amazon plugin accepts: ids, aliases, and ARNs of the aws and aws-us-gov partitions.
KMS_KEY_RE = re.compile(
    rf"^({_KMS_ID}|{_KMS_ALIAS}|arn:aws(-us-gov)?:kms:[^:]+:[0-9]{{12}}:(key/{_KMS_ID}|{_KMS_ALIAS}))$"
)
ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
AMI_ID_RE = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID_RE = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
SECURITY_GROUP_ID_RE = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
SOURCE_AMI_OWNER_RE = re.compile(r"^([0-9]{12}|amazon|self|aws-marketplace)$")
EC2_ENDPOINT_RE = re.compile(r"^https://[^ ]+$")
SSH_INTERFACES = ("", "public_ip", "private_ip", "public_dns", "private_dns", "session_manager")
ROOT_VOLUME_TYPES = ("gp3", "gp2", "io1", "io2")
IO1_IOPS_PER_GIB = 50
# EKS publishes no Amazon Linux 2 node for these minors (amazon-eks-ami's last AL2 AMIs, v20251209, are for 1.32).
AL2_LAST_MINOR = 32
DEFAULT_ARTIFACT_SOURCE = "https://amazon-eks.s3.us-west-2.amazonaws.com"
INSTANCE_TYPE_RE = re.compile(r"^[a-z0-9-]{2,}\.[a-z0-9-]+$")
CONTAINERD_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.:~_+-]{0,63}$")
ARTIFACT_SOURCE_RE = re.compile(r"^(https?://.+|/.*)$")
# Graviton instance families: a1, or a generation digit followed by g (m6g, c7gn, t4g, im4gn, x2gd, ...).
GRAVITON_FAMILY_RE = re.compile(r"^(a1|[a-z]+[0-9]+g[a-z]*)$")

ROOT_VOLUME_SIZE = (20, 1024)
ROOT_VOLUME_IOPS = (3000, 16000)
ROOT_VOLUME_THROUGHPUT = (125, 1000)
GP3_IOPS_PER_GIB = 500
GP3_MIBS_PER_IOPS = 0.25


class PackerVarsError(ValueError):
    """A bad input, naming the command-line option it came from."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


def partition(region: str) -> str:
    """The AWS partition of a region name."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def is_build_date(value: str) -> bool:
    """YYYY-MM-DD of a real day (what the template's kubelet_build_date condition accepts)."""
    if not BUILD_DATE_RE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_graviton(instance_type: str) -> bool:
    return bool(GRAVITON_FAMILY_RE.fullmatch(instance_type.split(".", 1)[0]))


def read_vars_file(path: Path) -> dict[str, str]:
    """The string assignments of a .pkrvars.hcl file as nodeforge writes them (name = "value" per line)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        match = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"\\$]*)"', line)
        if not match:
            raise ValueError(f'{path}:{number}: expected name = "value", got {line!r}')
        values[match.group(1)] = match.group(2)
    return values


def kubernetes_vars_files(root: Path | None = None) -> dict[str, Path]:
    """Kubernetes minor -> its vars file, oldest minor first."""
    directory = (root or repo_root()) / KUBERNETES_VARS_DIR
    files = {path.name[: -len(VARS_SUFFIX)]: path for path in directory.glob(f"*{VARS_SUFFIX}")}
    return dict(sorted(files.items(), key=lambda item: _version_key(item[0])))


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def git_commit(root: Path | None = None) -> str:
    """Short commit of the checkout, with -dirty for uncommitted changes; "unknown" outside git."""
    where = str(root or repo_root())
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head or "unknown"


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for. Empty strings and tuples leave the template's default."""

    kubernetes_version: str
    os: str = "al2023"
    arch: str = "x86_64"
    region: str = "us-west-2"
    ami_regions: tuple[str, ...] = ()
    ami_users: tuple[str, ...] = ()
    kms_key_id: str = ""
    region_kms_key_ids: Mapping[str, str] = field(default_factory=dict)
    root_volume_size: int = 20
    root_volume_iops: int = 3000
    root_volume_throughput: int = 125
    instance_type: str = ""
    source_ami_id: str = ""
    containerd_package_version: str = ""
    artifact_source: str = ""
    deprecate_at: str = ""
    subnet_id: str = ""
    git_commit: str = ""
    # "" takes the vars file's pinned build; "latest" lists the artifact source for the newest build of the minor.
    kubelet_version: str = ""
    ssh_interface: str = ""
    iam_instance_profile: str = ""
    associate_public_ip_address: str = ""  # "", "true" or "false"
    security_group_ids: tuple[str, ...] = ()
    ssh_source_cidrs: tuple[str, ...] = ()
    subnet_filter: Mapping[str, str] = field(default_factory=dict)
    vpc_filter: Mapping[str, str] = field(default_factory=dict)
    ec2_endpoint: str = ""
    source_ami_owners: tuple[str, ...] = ()
    root_volume_type: str = "gp3"


@dataclass(frozen=True)
class BuildPlan:
    """A checked request: the vars file, the variables Packer receives, and what the template derives."""

    template_dir: Path
    var_file: Path
    file_variables: dict[str, str]
    cli_variables: dict[str, Any]
    derived: dict[str, str]

    @property
    def variables(self) -> dict[str, Any]:
        return {**self.file_variables, **self.cli_variables}

    def argv(self, relative_to: Path | None = None) -> list[str]:
        argv = ["packer", "build", f"-var-file={_display(self.var_file, relative_to)}"]
        for name, value in self.cli_variables.items():
            argv += ["-var", f"{name}={_hcl_value(value)}"]
        argv.append(_display(self.template_dir, relative_to))
        return argv

    def command_line(self, relative_to: Path | None = None) -> str:
        return shlex.join(self.argv(relative_to))

    def as_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        return {
            "command": self.argv(relative_to),
            "command_line": self.command_line(relative_to),
            "template": _display(self.template_dir, relative_to),
            "var_file": _display(self.var_file, relative_to),
            "variables": self.variables,
            "derived": self.derived,
        }


def _display(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return str(path.relative_to(relative_to))
        except ValueError:
            pass
    return str(path)


def _hcl_value(value: Any) -> str:
    """A -var value: strings as they are, numbers bare, lists and maps in HCL's JSON-compatible syntax."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _check(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise PackerVarsError(option, message)


def _check_region(region: str, option: str) -> None:
    _check(
        bool(REGION_RE.fullmatch(region)), option, f"{region!r} is not an AWS region such as us-east-1 or us-gov-west-1"
    )


def _check_kms(key: str, option: str) -> None:
    _check(
        bool(KMS_KEY_RE.fullmatch(key)),
        option,
        f"{key!r} is not a KMS key id, mrk- id, alias/NAME or key ARN",
    )


def _check_range(value: int, bounds: tuple[int, int], option: str, unit: str) -> None:
    low, high = bounds
    _check(low <= value <= high, option, f"{value} is out of range: {low} to {high} {unit}")


def check_request(request: BuildRequest) -> None:
    """Raise PackerVarsError for the first bad input."""
    _check(
        bool(KUBERNETES_MINOR_RE.fullmatch(request.kubernetes_version)),
        "KUBERNETES_VERSION",
        f"{request.kubernetes_version!r} is not a Kubernetes minor version such as 1.31",
    )
    _check(request.os in OS_CHOICES, "--os", f"{request.os!r} is not one of {', '.join(OS_CHOICES)}")
    _check(request.arch in ARCH_CHOICES, "--arch", f"{request.arch!r} is not one of {', '.join(ARCH_CHOICES)}")
    _check_region(request.region, "--region")

    _check(len(set(request.ami_regions)) == len(request.ami_regions), "--ami-regions", "lists a region twice")
    for region in request.ami_regions:
        _check_region(region, "--ami-regions")
        _check(region != request.region, "--ami-regions", f"{region} is the build region (--region); list copies only")
        _check(
            partition(region) == partition(request.region),
            "--ami-regions",
            f"{region} is in partition {partition(region)}, the build region {request.region} in "
            f"{partition(request.region)}: AMIs cannot be copied across partitions",
        )
    for account in request.ami_users:
        _check(bool(ACCOUNT_RE.fullmatch(account)), "--ami-users", f"{account!r} is not a 12-digit AWS account id")

    if request.kms_key_id:
        _check_kms(request.kms_key_id, "--kms-key-id")
    for region, key in request.region_kms_key_ids.items():
        _check_region(region, "--region-kms-key-id")
        _check(
            region in request.ami_regions,
            "--region-kms-key-id",
            f"{region} is not one of --ami-regions (--kms-key-id covers the build region)",
        )
        if key:
            _check_kms(key, "--region-kms-key-id")
    if request.region_kms_key_ids:
        missing = [region for region in request.ami_regions if region not in request.region_kms_key_ids]
        _check(not missing, "--region-kms-key-id", f"no key for copy region(s) {', '.join(missing)}")
    if request.ami_users:
        _check(
            bool(request.kms_key_id),
            "--kms-key-id",
            "sharing with --ami-users needs a customer managed KMS key the accounts may use: "
            "AMIs encrypted with the default aws/ebs key cannot be shared",
        )
        unshareable = [r for r in request.ami_regions if not request.region_kms_key_ids.get(r)]
        _check(
            not unshareable,
            "--region-kms-key-id",
            f"shared copies need a customer managed key per copy region; none for {', '.join(unshareable)}",
        )

    _check_range(request.root_volume_size, ROOT_VOLUME_SIZE, "--root-volume-size", "GiB")
    _check_range(request.root_volume_iops, ROOT_VOLUME_IOPS, "--root-volume-iops", "IOPS")
    _check_range(request.root_volume_throughput, ROOT_VOLUME_THROUGHPUT, "--root-volume-throughput", "MiB/s")
    volume_type = request.root_volume_type
    _check(
        volume_type in ROOT_VOLUME_TYPES,
        "--root-volume-type",
        f"{volume_type!r} is not one of {', '.join(ROOT_VOLUME_TYPES)} (st1 and sc1 cannot be boot volumes)",
    )
    _check(
        volume_type != "gp2" or request.root_volume_iops == TEMPLATE_DEFAULTS["root_volume_iops"],
        "--root-volume-iops",
        "applies to gp3, io1 and io2 only: leave it at 3000 for gp2",
    )
    _check(
        volume_type == "gp3" or request.root_volume_throughput == TEMPLATE_DEFAULTS["root_volume_throughput"],
        "--root-volume-throughput",
        f"applies to gp3 only: leave it at 125 for {volume_type}",
    )
    _check(
        volume_type != "io1" or request.root_volume_iops <= request.root_volume_size * IO1_IOPS_PER_GIB,
        "--root-volume-iops",
        f"io1 allows {IO1_IOPS_PER_GIB} IOPS per GiB: {request.root_volume_iops} IOPS needs at least "
        f"{-(-request.root_volume_iops // IO1_IOPS_PER_GIB)} GiB (--root-volume-size is {request.root_volume_size})",
    )
    if volume_type != "gp3":
        return _check_more(request)
    _check(
        request.root_volume_iops <= request.root_volume_size * GP3_IOPS_PER_GIB,
        "--root-volume-iops",
        f"gp3 allows {GP3_IOPS_PER_GIB} IOPS per GiB: {request.root_volume_iops} IOPS needs at least "
        f"{-(-request.root_volume_iops // GP3_IOPS_PER_GIB)} GiB (--root-volume-size is {request.root_volume_size})",
    )
    _check(
        request.root_volume_throughput <= request.root_volume_iops * GP3_MIBS_PER_IOPS,
        "--root-volume-throughput",
        f"gp3 allows {GP3_MIBS_PER_IOPS} MiB/s per provisioned IOPS: {request.root_volume_throughput} MiB/s needs "
        f"at least {int(request.root_volume_throughput / GP3_MIBS_PER_IOPS)} IOPS (--root-volume-iops is "
        f"{request.root_volume_iops})",
    )

    _check_more(request)


def _check_more(request: BuildRequest) -> None:
    """The checks after the root volume's."""
    if request.instance_type:
        _check(
            bool(INSTANCE_TYPE_RE.fullmatch(request.instance_type)),
            "--instance-type",
            f"{request.instance_type!r} is not an EC2 instance type such as m6i.large",
        )
        graviton = is_graviton(request.instance_type)
        _check(
            graviton == (request.arch == "arm64"),
            "--instance-type",
            f"{request.instance_type} is {'an arm64 (Graviton)' if graviton else 'an x86_64'} type but --arch is "
            f"{request.arch}",
        )
    if request.source_ami_id:
        _check(
            bool(AMI_ID_RE.fullmatch(request.source_ami_id)),
            "--source-ami-id",
            f"{request.source_ami_id!r} is not an AMI id such as ami-0123456789abcdef0",
        )
    if request.containerd_package_version:
        _check(
            bool(CONTAINERD_VERSION_RE.fullmatch(request.containerd_package_version)),
            "--containerd-package-version",
            f"{request.containerd_package_version!r} is not a package version such as 1.7.27 (no wildcards)",
        )
    if request.artifact_source:
        _check(
            bool(ARTIFACT_SOURCE_RE.fullmatch(request.artifact_source)),
            "--artifact-source",
            f"{request.artifact_source!r} is neither an http(s) URL nor an absolute folder",
        )
    if request.deprecate_at:
        _check(_is_rfc3339(request.deprecate_at), "--deprecate-at", f"{request.deprecate_at!r} is not RFC 3339")
    if request.subnet_id:
        _check(
            bool(SUBNET_ID_RE.fullmatch(request.subnet_id)),
            "--subnet-id",
            f"{request.subnet_id!r} is not a subnet id such as subnet-0123456789abcdef0",
        )
    _check_combinations(request)


def _check_combinations(request: BuildRequest) -> None:
    """What only shows across inputs: the template's refusals (locals.pkr.hcl refusal_checks) and the new options."""
    minor = int(request.kubernetes_version.split(".")[1])
    _check(
        request.os != "al2" or minor <= AL2_LAST_MINOR,
        "--os",
        f"al2 cannot run Kubernetes {request.kubernetes_version}: EKS publishes no Amazon Linux 2 node for 1.33 or "
        "later (amazon-eks-ami's last AL2 AMIs are for 1.32); use --os al2023",
    )
    _check(
        request.os != "al2" or not request.containerd_package_version.startswith("2."),
        "--containerd-package-version",
        f"{request.containerd_package_version} cannot be installed on al2: amazon-linux-extras' docker topic ships "
        "containerd 1.x",
    )
    _check(
        request.kubelet_version in ("", "latest"),
        "--kubelet-version",
        f"{request.kubelet_version!r}: give latest, or leave it out for the vars file's pinned build",
    )
    _check(
        request.ssh_interface in SSH_INTERFACES,
        "--ssh-interface",
        f"{request.ssh_interface!r} is not one of {', '.join(repr(i) for i in SSH_INTERFACES)}",
    )
    _check(
        request.ssh_interface != "session_manager" or bool(request.iam_instance_profile),
        "--iam-instance-profile",
        "--ssh-interface session_manager needs an instance profile (a role with AmazonSSMManagedInstanceCore)",
    )
    if request.iam_instance_profile:
        _check(
            bool(re.fullmatch(r"[A-Za-z0-9+=,.@_-]{1,128}", request.iam_instance_profile)),
            "--iam-instance-profile",
            f"{request.iam_instance_profile!r} is not an instance profile name",
        )
    _check(
        request.associate_public_ip_address in ("", "true", "false"),
        "--associate-public-ip-address",
        f"{request.associate_public_ip_address!r} is not true or false",
    )
    _check(
        not (request.ssh_interface in ("public_ip", "public_dns") and request.associate_public_ip_address == "false"),
        "--associate-public-ip-address",
        f"--ssh-interface {request.ssh_interface} needs a public address",
    )
    for group in request.security_group_ids:
        _check(
            bool(SECURITY_GROUP_ID_RE.fullmatch(group)),
            "--security-group-ids",
            f"{group!r} is not a security group id such as sg-0123456789abcdef0",
        )
    for cidr in request.ssh_source_cidrs:
        _check(_is_cidr(cidr), "--ssh-source-cidrs", f"{cidr!r} is not a CIDR block such as 203.0.113.0/24")
    _check(
        not (request.security_group_ids and request.ssh_source_cidrs),
        "--ssh-source-cidrs",
        "only apply to the temporary security group: not with --security-group-ids",
    )
    for option, filters in (("--subnet-filter", request.subnet_filter), ("--vpc-filter", request.vpc_filter)):
        for name, value in filters.items():
            _check(bool(name) and bool(value), option, f"{name}={value}: filter name and value must not be empty")
    _check(
        not (request.subnet_id and request.subnet_filter),
        "--subnet-filter",
        "--subnet-id and --subnet-filter both choose the subnet: give one",
    )
    _check(
        not request.vpc_filter or bool(request.subnet_id or request.subnet_filter),
        "--vpc-filter",
        "needs --subnet-id or --subnet-filter (Packer launches into a VPC only through a subnet)",
    )
    if request.ec2_endpoint:
        _check(
            bool(EC2_ENDPOINT_RE.fullmatch(request.ec2_endpoint)),
            "--ec2-endpoint",
            f"{request.ec2_endpoint!r} is not an https URL",
        )
    for owner in request.source_ami_owners:
        _check(
            bool(SOURCE_AMI_OWNER_RE.fullmatch(owner)),
            "--source-ami-owners",
            f"{owner!r} is neither a 12-digit account id nor amazon, self or aws-marketplace",
        )


def _is_cidr(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _is_rfc3339(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def derived_settings(os: str, arch: str, instance_type: str = "") -> dict[str, str]:
    """What packer/eks-node/locals.pkr.hcl derives for these inputs (tests hold the two to agreeing)."""
    return {
        "instance_type": instance_type or DEFAULT_INSTANCE_TYPES[arch],
        "source_ami_name": SOURCE_AMI_NAMES[os].format(arch=arch),
        "source_ami_owner": SOURCE_AMI_OWNER,
        "os_version": OS_VERSIONS[os],
        "ssh_username": SSH_USERNAMES[os],
    }


def plan_build(request: BuildRequest, root: Path | None = None) -> BuildPlan:
    """Check the request and resolve it to the vars file and variables of one `packer build`."""
    check_request(request)
    root = root or repo_root()
    files = kubernetes_vars_files(root)
    var_file = files.get(request.kubernetes_version)
    if var_file is None:
        known = ", ".join(files) or "none"
        raise PackerVarsError(
            "KUBERNETES_VERSION",
            f"no vars file for Kubernetes {request.kubernetes_version} in {KUBERNETES_VARS_DIR} (known: {known})",
        )
    file_variables = read_vars_file(var_file)
    problems = []
    if file_variables.get("kubernetes_version") != request.kubernetes_version:
        problems.append(f"kubernetes_version = {file_variables.get('kubernetes_version')!r}")
    kubelet_version = file_variables.get("kubelet_version", "")
    same_minor = kubelet_version.startswith(f"{request.kubernetes_version}.")
    if not KUBELET_VERSION_RE.fullmatch(kubelet_version) or not same_minor:
        problems.append(f"kubelet_version = {kubelet_version!r}")
    if not is_build_date(file_variables.get("kubelet_build_date", "")):
        problems.append(f"kubelet_build_date = {file_variables.get('kubelet_build_date')!r}")
    if problems:
        raise PackerVarsError("KUBERNETES_VERSION", f"{var_file} is inconsistent: {', '.join(problems)}")
    if request.kubelet_version == "latest":
        file_variables.update(_resolve_latest(request))
    cli_variables: dict[str, Any] = {
        "os": request.os,
        "arch": request.arch,
        "region": request.region,
        "git_commit": request.git_commit or git_commit(root),
    }
    optional: dict[str, Any] = {
        "ami_regions": list(request.ami_regions),
        "ami_users": list(request.ami_users),
        "kms_key_id": request.kms_key_id,
        "region_kms_key_ids": dict(request.region_kms_key_ids),
        "instance_type": request.instance_type,
        "source_ami_id": request.source_ami_id,
        "containerd_package_version": request.containerd_package_version,
        "artifact_source": request.artifact_source,
        "deprecate_at": request.deprecate_at,
        "subnet_id": request.subnet_id,
        "ssh_interface": request.ssh_interface,
        "iam_instance_profile": request.iam_instance_profile,
        "associate_public_ip_address": request.associate_public_ip_address,
        "security_group_ids": list(request.security_group_ids),
        "ssh_source_cidrs": list(request.ssh_source_cidrs),
        "subnet_filter": dict(request.subnet_filter),
        "vpc_filter": dict(request.vpc_filter),
        "ec2_endpoint": request.ec2_endpoint,
    }
    if request.kubelet_version == "latest":
        optional["kubelet_version"] = file_variables["kubelet_version"]
        optional["kubelet_build_date"] = file_variables["kubelet_build_date"]
    cli_variables.update({name: value for name, value in optional.items() if value})
    if request.source_ami_owners:
        cli_variables["source_ami_owners"] = list(request.source_ami_owners)
    for name in ("root_volume_size", "root_volume_iops", "root_volume_throughput", "root_volume_type"):
        value = getattr(request, name)
        if value != TEMPLATE_DEFAULTS[name]:
            cli_variables[name] = value
    return BuildPlan(
        template_dir=root / TEMPLATE_DIR,
        var_file=var_file,
        file_variables=file_variables,
        cli_variables=cli_variables,
        derived=derived_settings(request.os, request.arch, request.instance_type),
    )


def _resolve_latest(request: BuildRequest) -> dict[str, str]:
    """kubelet_version and kubelet_build_date of the newest build of the minor in the artifact source."""
    from nodeforge.releases import ReleaseLookupError, latest_release

    source = request.artifact_source or DEFAULT_ARTIFACT_SOURCE
    try:
        release = latest_release(source, request.kubernetes_version, request.arch)
    except ReleaseLookupError as exc:
        raise PackerVarsError("--kubelet-version", f"latest: {exc}") from exc
    return {"kubelet_version": release.version, "kubelet_build_date": release.build_date}


def parse_filters(values: Sequence[str], option: str) -> dict[str, str]:
    """NAME=VALUE items (EC2 Describe* filters) as a map."""
    filters: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise PackerVarsError(option, f"{item!r} is not NAME=VALUE")
        if name in filters:
            raise PackerVarsError(option, f"{name} given twice")
        filters[name] = value
    return filters


def parse_region_keys(values: Sequence[str]) -> dict[str, str]:
    """REGION=KEY items (KEY may be empty for the region's default key) as a map."""
    keys: dict[str, str] = {}
    for item in values:
        region, sep, key = item.partition("=")
        if not sep or not region:
            raise PackerVarsError("--region-kms-key-id", f"{item!r} is not REGION=KEY")
        if region in keys:
            raise PackerVarsError("--region-kms-key-id", f"{region} given twice")
        keys[region] = key
    return keys
