"""`nodeforge launch`: try your user data against an image before shipping it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from nodeforge.paths import cache_dir


def _disk_for(image: Path, console: Any) -> Path:
    """IMAGE as a launch disk: a disk image as given, or a rootfs tar turned into one (cached by its identity)."""
    from nodeforge.vm.launch import LaunchError, build_launch_disk

    if not image.exists():
        raise LaunchError(f"{image}: no such image (a disk.img or a rootfs tar from `nodeforge bake`)")
    if image.is_dir():
        for name in ("disk.img", "rootfs.tar"):
            if (image / name).is_file():
                return _disk_for(image / name, console)
        raise LaunchError(f"{image}: folder holds neither disk.img nor rootfs.tar")
    with image.open("rb") as fh:
        head = fh.read(1024)
    if image.suffix != ".tar" and head[510:512] == b"\x55\xaa":
        return image
    if image.suffix != ".tar":
        raise LaunchError(f"{image}: neither a bootable disk image (no boot sector) nor a rootfs .tar")
    st = image.stat()
    key = hashlib.sha256(f"{image.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "launch-disks" / key
    disk = out / "disk.img"
    if not disk.is_file():
        console.print(f"building a self-booting disk from {image} ...")
        oci = cache_dir() / "fixtures" / "busybox-oci.tar"
        build_launch_disk(image, out, oci_image=oci if oci.is_file() else None)
    return disk


def summary(node: Any) -> dict[str, Any]:
    extra = node.node
    units = {
        name: f"{props.get('ActiveState')} ({props.get('SubState')}, {props.get('Result')})"
        for name, props in extra.get("units", {}).items()
    }
    return {
        "ok": node.ok,
        "problems": node.problems,
        "system_state": node.report.get("state"),
        "failed_units": node.report.get("failed"),
        "units": units,
        "bootstrap": extra.get("bootstrap_journal", [])[-15:],
        "kubelet_args": extra.get("kubelet_args"),
        "cloud_init": extra.get("cloud_init_status"),
        "container": extra.get("container"),
        "local_storage": _local_storage_summary(extra.get("local_storage") or {}),
        "files": sorted(extra.get("files", {})),
        "seconds": {
            "report": node.seconds,
            **node.marks,
            "bootstrap_done": node.unit_seconds("nodeforge-bootstrap.service"),
            "kubelet_started": node.unit_seconds("kubelet.service"),
            "sshd_started": node.unit_seconds("ssh.service"),
        },
        "console_log": str(node.console_log),
    }


def _local_storage_summary(storage: dict[str, Any]) -> list[str]:
    """One line per instance-store disk, md array and local-storage mount the node reported."""
    lines = [f"disk {name} -> {device}" for name, device in (storage.get("disks") or {}).items()]
    for name, array in (storage.get("arrays") or {}).items():
        members = ", ".join(array.get("members") or [])
        lines.append(f"/dev/md/{name}: {array.get('level')} of {members}, {array.get('fstype') or 'no file system'}")
    for mount in storage.get("mounts") or []:
        origin = mount["source"] + (mount["root"] if mount["root"] != "/" else "")
        lines.append(f"{mount['target']}: {origin} ({mount['fstype']})")
    return lines


def run(
    image: Path,
    *,
    user_data: Path | None,
    instance_type: str,
    firmware: str,
    imds: str,
    ssh: bool,
    timeout: float,
    output: str,
    console: Any,
    instance_store: str = "0",
) -> int:
    from nodeforge.vm.disk import DiskImageError
    from nodeforge.vm.launch import LaunchError, LaunchOptions, launch, parse_instance_store

    err = sys.stderr
    if output not in {"text", "json"}:
        print(f"--output: unknown output {output!r} (text or json)", file=err)
        return 2
    try:
        data = user_data.read_bytes() if user_data is not None else None
    except OSError as exc:
        print(f"--user-data {user_data}: {exc.strerror}", file=err)
        return 2
    try:
        store = parse_instance_store(instance_store)
    except LaunchError as exc:
        print(str(exc), file=err)
        return 2
    try:
        disk = _disk_for(image, console)
        store_tag = f"-store{len(store)}x{store[0] >> 20}M" if store else ""
        work = (
            cache_dir()
            / "launch"
            / (f"{instance_type}-{firmware}{store_tag}-{hashlib.sha256(data or b'').hexdigest()[:8]}")
        )
        for old in work.glob("*"):
            if old.is_file() or old.is_socket():
                old.unlink()
        node = launch(
            LaunchOptions(
                disk=disk,
                work_dir=work,
                user_data=data,
                instance_type=instance_type,
                firmware=firmware,
                imds=imds,
                ssh=ssh,
                timeout=timeout,
                keep_running=ssh,
                instance_store=store,
            )
        )
    except (LaunchError, DiskImageError, ValueError) as exc:
        print(f"launch failed: {exc}", file=err)
        return 2
    try:
        info = summary(node)
        if output == "json":
            print(json.dumps(info, indent=2))
        else:
            _print(info, console)
        if ssh:
            console.print(
                f"node up: ssh -i {node.ssh_key} -p {node.ssh_port} -o StrictHostKeyChecking=no ec2-user@127.0.0.1\n"
                f"         nodeforge verify --ssh {node.ssh_target()} -i {node.ssh_key}\n"
                "press Enter to power it off"
            )
            with contextlib.suppress(KeyboardInterrupt):
                sys.stdin.readline()
    finally:
        node.power_off()
    return 0 if node.ok else 1


def _print(info: dict[str, Any], console: Any) -> None:
    console.print(f"system: {info['system_state']}, failed units: {info['failed_units'] or 'none'}")
    for name, state in info["units"].items():
        console.print(f"  {name}: {state}")
    console.print("bootstrap agent (journal):")
    for line in info["bootstrap"]:
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"kubelet started with: {' '.join(info['kubelet_args'] or []) or '(not started)'}", markup=False)
    console.print(f"cloud-init: {'; '.join(info['cloud_init'] or [])}", markup=False)
    console.print(f"container run: {'ok' if (info['container'] or {}).get('ran') else 'FAILED'}")
    if info["local_storage"]:
        console.print("instance store:")
        for line in info["local_storage"]:
            console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"files written: {len(info['files'])}; timings (s): {info['seconds']}")
    if info["problems"]:
        console.print("[red]the node did not configure itself:[/red]")
        for problem in info["problems"]:
            console.print(f"  - {problem}", markup=False)
    else:
        console.print("[green]node configured itself from its user data[/green]")
    console.print(f"console log: {info['console_log']}")
