"""The local bake: base image -> Packer (docker builder + node playbook) -> clean, verified, bootable image."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from nodeforge.bake import docker
from nodeforge.bake.base import build_base
from nodeforge.bake.fixtures import build_artifact_tree, build_oci_image, build_ssm_agent_deb
from nodeforge.bake.hygiene import scan_rootfs_tar
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.bake.verify import verify_image
from nodeforge.cli_support import StageReporter
from nodeforge.paths import cache_dir, repo_root
from nodeforge.releases import kubelet_releases

T = TypeVar("T")


class BakeError(RuntimeError):
    pass


VARIANTS = ("mutable", "immutable")
# What the os_packages role and the Packer template accept as os_packages_apt_proxy / apt_proxy.
APT_PROXY_URL = re.compile(r"https?://[^\s/?#]+/?")


@dataclass
class BakeOptions:
    kubernetes_version: str = "1.31"
    image_repository: str = "nodeforge/node"
    image_tag: str | None = None
    artifact_source: str | None = None  # None: serve the test fixtures from a mirror on 127.0.0.1
    verify: bool = True
    boot: bool = True
    out_dir: Path | None = None
    # mutable: an ext4 root (like AL2023/AL2 AMIs); immutable: sealed read-only root with dm-verity and A/B slots
    variant: str = "mutable"
    # HTTP proxy for apt during the Packer build only (e.g. the test run's apt-cacher-ng); never kept in the image
    apt_proxy: str = ""
    # First boot: the user data the booted image is launched with (default: Karpenter-style AL2023 MIME with
    # instanceStorePolicy RAID0), firmware, and the instance: a type with two NVMe instance-store disks, attached
    first_boot_user_data: Path | None = None
    first_boot_firmware: str = "bios"
    first_boot_instance_type: str = "m5d.4xlarge"  # 2 x 300 GB NVMe instance store on EC2
    first_boot_instance_store: tuple[int, ...] = (8 << 30, 8 << 30)  # sparse files: the size costs nothing
    # Seconds from power-on to the node's report under software emulation (a boot alone: 90-120 s; the test suite
    # boots it beside three other guests and the Molecule scenarios)
    first_boot_timeout: float = 900.0
    # immutable: private key that signs the sealed root's hash (None: unsigned)
    signing_key: Path | None = None
    # Cgroup the Packer build's container is created under (docker run --cgroup-parent; "": Docker's default)
    cgroup_parent: str = ""


@dataclass
class BakeReport:
    image: str = ""
    manifest: str = ""
    components: str = ""
    rootfs_tar: str = ""
    image_size_bytes: int = 0
    rootfs_tar_bytes: int = 0
    base_cached: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    verify: dict[str, object] = field(default_factory=dict)
    verify_build: dict[str, object] = field(default_factory=dict)  # the in-build step (packer/local.pkr.hcl)
    hygiene: dict[str, object] = field(default_factory=dict)
    boot: dict[str, object] = field(default_factory=dict)
    variant: str = "mutable"
    immutable: dict[str, object] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        tmp.replace(path)


def _git_commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=repo_root(), check=False
    )
    return proc.stdout.strip() or "unknown"


@contextmanager
def _artifact_source(options: BakeOptions) -> Iterator[str]:
    if options.artifact_source:
        yield options.artifact_source
        return
    root = cache_dir() / "fixtures" / "artifacts"
    build_artifact_tree(root, list(kubelet_releases().values()))
    build_ssm_agent_deb(root)
    with ArtifactMirror(root) as mirror:
        yield mirror.url


def run_packer(variables: dict[str, str], log: Path) -> None:
    template = repo_root() / "packer" / "local.pkr.hcl"
    cmd = ["packer", "build", "-color=false"]
    for key, value in variables.items():
        cmd += ["-var", f"{key}={value}"]
    cmd.append(str(template))
    # ansible-playbook from this venv, whatever PATH the caller has.
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = dict(os.environ, PATH=path, PACKER_NO_COLOR="1", ANSIBLE_FORCE_COLOR="0")
    with log.open("w") as handle:
        proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=repo_root(), env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BakeError(f"packer build failed (exit {proc.returncode}); log: {log}\n{tail}")


def bake_local(options: BakeOptions, reporter: StageReporter | None = None) -> BakeReport:
    """Bake, verify and boot-check a local node image; returns figures for every stage."""
    reporter = reporter or StageReporter()
    report = BakeReport(variant=options.variant)
    if options.variant not in VARIANTS:
        raise BakeError(f"unknown variant {options.variant!r} (known: {', '.join(VARIANTS)})")
    if options.apt_proxy and not APT_PROXY_URL.fullmatch(options.apt_proxy):
        raise BakeError(f"apt proxy {options.apt_proxy!r} is not a proxy URL like http://127.0.0.1:3142")
    releases = kubelet_releases()
    if options.kubernetes_version not in releases:
        raise BakeError(
            f"unknown Kubernetes version {options.kubernetes_version!r} (known: {', '.join(sorted(releases))})"
        )
    tag = options.image_tag or f"k8s-{options.kubernetes_version}-{time.strftime('%Y%m%d%H%M%S')}"
    out = options.out_dir or repo_root() / "build" / "local" / tag
    out.mkdir(parents=True, exist_ok=True)
    image = f"{options.image_repository}:{tag}"

    def stage(name: str, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        with reporter.stage(name):
            result = fn()
        report.timings[name] = round(time.monotonic() - started, 2)
        return result

    base = stage("base image", build_base)
    report.base_cached = base.cached
    report.timings["base image (cold)" if not report.base_cached else "base image (cached)"] = report.timings[
        "base image"
    ]
    with _artifact_source(options) as source:
        manifest = out / "manifest.json"
        variables = {
            "base_image": base.tag,
            "image_repository": options.image_repository,
            "image_tag": tag,
            "kubernetes_version": options.kubernetes_version,
            "kubelet_version": releases[options.kubernetes_version].version,
            "artifact_source": source,
            "manifest_path": str(manifest),
            "components_path": str(out / "components.json"),
            "git_commit": _git_commit(),
            "variant": options.variant,
            "apt_proxy": options.apt_proxy,
            "cgroup_parent": options.cgroup_parent,
            # the immutable variant's seal step (a shell-local post-processor) exports and seals the image
            "seal_dir": str(out / "immutable" / "sealed"),
            "rootfs_tar": str(out / "rootfs.tar"),
            "signing_key": str(Path(options.signing_key).resolve()) if options.signing_key else "",
            "nodeforge_command": f"{sys.executable} -m nodeforge.cli",
            # the build verifies itself (tests/infra, CIS table, hygiene) on the build instance before the commit
            "self_verify": "true" if options.verify else "false",
            "verify_dir": str(out / "verify-build"),
        }
        if options.verify:  # the containerd checks run this image inside the instance
            build_oci_image(cache_dir() / "fixtures" / "busybox-oci.tar")
        stage("packer build", lambda: run_packer(variables, out / "packer.log"))
    report.image, report.manifest, report.components = image, str(manifest), str(out / "components.json")
    if options.verify:
        report.verify_build = json.loads((out / "verify-build" / "verify-build.json").read_text())
    report.image_size_bytes = docker.image_size(image)
    tar = out / "rootfs.tar"
    if options.variant == "mutable" or not tar.is_file():  # the immutable template exported it to seal it
        stage("export", lambda: docker.export_image(image, tar))
    report.rootfs_tar, report.rootfs_tar_bytes = str(tar), tar.stat().st_size
    hygiene = stage("hygiene scan", lambda: scan_rootfs_tar(tar))
    report.hygiene = hygiene.to_dict()
    if hygiene.findings:
        report.write(out / "bake-report.json")
        listed = "; ".join(f"{f.rule} {f.path}" for f in hygiene.findings[:20])
        raise BakeError(f"{image} is not clean ({len(hygiene.findings)} findings): {listed}")
    # The committed image in a container: only where no booted node is checked after it. With the first boot,
    # tests/infra runs on the node booted from the exported root (what ships), after the same suite ran on the
    # live build root inside Packer (verify-build): a container of the committed image would prove neither more.
    booted_checks = options.boot and options.variant == "mutable"
    if options.verify and booted_checks:
        report.verify = {
            **{k: report.verify_build[k] for k in ("passed", "failed", "skipped", "log")},
            "stage": "in-build",
        }
    elif options.verify:
        build_oci_image(cache_dir() / "fixtures" / "busybox-oci.tar")
        result = stage("verify", lambda: verify_image(image, out_dir=out))
        report.verify = {
            "passed": result.passed,
            "failed": result.failed,
            "skipped": result.skipped,
            "log": str(result.report),
        }
        if not result.ok:
            report.write(out / "bake-report.json")
            raise BakeError(f"verification of {image} failed: {report.verify}")
    if options.variant == "immutable":
        _seal(options, report, tar, out, image, stage)
    elif options.boot:
        _first_boot(options, report, tar, out, image, stage)
    report.write(out / "bake-report.json")
    return report


# The sealed disk's boot check under software emulation: the same bound as the mutable image's first boot
# (LaunchOptions.timeout). 300 s ran out on a loaded 2-CPU machine beside three other TCG guests.
IMMUTABLE_BOOT_TIMEOUT = 900.0


def _seal(
    options: BakeOptions,
    report: BakeReport,
    tar: Path,
    out: Path,
    image: str,
    stage: Callable[[str, Callable[[], object]], object],
) -> None:
    """The immutable variant after Packer sealed the image: A/B disk with the sealed root in slot A, boot it.

    The boot is from the disk alone (its GRUB picks slot A from the grubenv on the ESP), under SeaBIOS.
    """
    from nodeforge.immutable import bake_immutable
    from nodeforge.immutable.seal import SealedRoot

    sealed_root = SealedRoot.load(out / "immutable" / "sealed")
    sealed = bake_immutable(
        tar,
        out / "immutable",
        boot=options.boot,
        stage=stage,  # type: ignore[arg-type]
        sealed=sealed_root,
        boot_timeout=IMMUTABLE_BOOT_TIMEOUT,
    )
    report.immutable = sealed.to_dict()
    if sealed.boot is not None and not sealed.boot.ok:
        report.write(out / "bake-report.json")
        failed = [name for name, ok in sealed.boot.checks.items() if not ok]
        raise BakeError(f"boot check of the sealed {image} failed: {failed}")


def _first_boot(
    options: BakeOptions,
    report: BakeReport,
    tar: Path,
    out: Path,
    image: str,
    stage: Callable[[str, Callable[[], T]], T],
) -> None:
    """Boot the image as EC2 would (its own GRUB, IMDSv2 user data, cloud-init), then run the node checks on it.

    The node must configure itself from the user data (agent succeeded, kubelet started with its files,
    containerd ran a container, no failed unit); then tests/infra runs over SSH against the running node.
    """
    from nodeforge.bake.verify import verify_ssh
    from nodeforge.vm.launch import FIRST_BOOT_USER_DATA, LaunchOptions, build_launch_disk, launch

    oci = cache_dir() / "fixtures" / "busybox-oci.tar"
    build_oci_image(oci)
    disk = stage("boot disk", lambda: build_launch_disk(tar, out / "disk", oci_image=oci))
    user_data_file = options.first_boot_user_data or FIRST_BOOT_USER_DATA
    launch_options = LaunchOptions(
        disk=disk.disk,
        work_dir=out / "first-boot",
        user_data=Path(user_data_file).read_bytes(),
        firmware=options.first_boot_firmware,
        instance_type=options.first_boot_instance_type,
        instance_store=options.first_boot_instance_store,
        ssh=True,
        keep_running=True,
        timeout=options.first_boot_timeout,
    )
    for old in launch_options.work_dir.glob("*"):
        if old.is_file() or old.is_socket():
            old.unlink()
    node = stage("first boot", lambda: launch(launch_options))
    node.save(launch_options.work_dir / "node-report.json")
    try:
        report.boot = {
            "state": node.report.get("state"),
            "failed_units": node.report.get("failed"),
            "units": node.report.get("units"),
            "root": node.report.get("root"),
            "seconds": node.seconds,
            "marks": node.marks,
            "firmware": options.first_boot_firmware,
            "user_data": str(user_data_file),
            "bootstrap_done": node.unit_seconds("nodeforge-bootstrap.service"),
            "kubelet_started": node.unit_seconds("kubelet.service"),
            "sshd_started": node.unit_seconds("ssh.service"),
            "kubelet_args": node.node.get("kubelet_args"),
            "container": node.node.get("container"),
            "instance_type": options.first_boot_instance_type,
            "instance_store": list(options.first_boot_instance_store),
            "local_storage_mounts": (node.node.get("local_storage") or {}).get("mounts"),
            "problems": node.problems,
            "console_log": str(node.console_log),
            "node_report": str(launch_options.work_dir / "node-report.json"),
            "disk": str(disk.disk),
        }
        if not node.ok:
            report.write(out / "bake-report.json")
            raise BakeError(f"first boot of {image} failed: {'; '.join(node.problems)} (console {node.console_log})")
        version = options.kubernetes_version
        result = stage(
            "verify over ssh",
            lambda: verify_ssh(
                node.ssh_target(), out_dir=out / "verify-ssh", identity_file=node.ssh_key, kubernetes_version=version
            ),
        )
        report.boot["verify_ssh"] = {
            "passed": result.passed,
            "failed": result.failed,
            "skipped": result.skipped,
            "log": str(result.report),
            "junit": str(result.junit[0]),
        }
    finally:
        report.boot["powered_off_cleanly"] = node.power_off()
    if not result.ok:
        report.write(out / "bake-report.json")
        raise BakeError(f"node checks over SSH on the booted {image} failed: {report.boot['verify_ssh']}")
