"""What a booted node did at first boot, as one JSON line: the boot probe's ``extra`` report on a launched VM.

Installed into launch disks as the probe's extra script (``/usr/local/libexec/nodeforge-bootprobe-extra``) and
run on the node by ``python3`` (stdlib only; written for the node's oldest interpreter). It reads, and never
changes, the node: the bootstrap unit's outcome and its journal, cloud-init's result, the kubelet unit and the
arguments the kubelet was started with, containerd and one container run, and the files the agent writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AGENT_FILE_GLOBS = (
    "/etc/kubernetes/kubelet/config.json",
    "/etc/kubernetes/kubelet/config.json.d/*",
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/image-credential-provider/*",
    "/var/lib/kubelet/kubeconfig",
    "/var/lib/kubelet/bootstrap-kubeconfig",
    "/etc/eks/kubelet/environment",
    "/etc/containerd/config.d/*",
    "/etc/containerd/base-runtime-spec.json",
    "/etc/eks/image-credential-provider/config.json",
    "/etc/containerd/certs.d/*/hosts.toml",
    "/etc/systemd/system/kubelet.service.d/*",
    "/etc/systemd/system/runtime.slice",
    "/etc/sysctl.d/90-nodeforge-settings.conf",
)
UNITS = ("nodeforge-bootstrap.service", "kubelet.service", "containerd.service", "cloud-final.service", "ssh.service")
UNIT_PROPS = (
    "ActiveState,SubState,Result,ExecMainStatus,NRestarts,ActiveEnterTimestampMonotonic,"
    "InactiveExitTimestampMonotonic,InactiveEnterTimestampMonotonic"
)
KUBELET_ARGS = "/run/nodeforge-fixture/kubelet.args"
# instance-store set-up (spec.instance.localStorage): where setup-local-disks mounts and the mount units it writes
LOCAL_STORAGE_MOUNTS = (
    "/mnt/k8s-disks",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/soci-snapshotter-grpc",
    "/var/log/pods",
)
PROBE_IMAGE = "/var/lib/nodeforge-probe/busybox-oci.tar"
MAX_FILE = 64 * 1024


def _run(cmd: list[str], timeout: int = 60) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            universal_newlines=True,  # noqa: UP021 (node Python 3.7)
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, proc.stdout


def _json_v1(path: Path) -> dict | None:
    """The "v1" object of one of cloud-init's JSON state files, or None (missing, unreadable or not that shape)."""
    try:
        data = json.loads(_read(str(path)))
    except ValueError:
        return None
    body = data.get("v1") if isinstance(data, dict) else None
    return body if isinstance(body, dict) else None


def _cloud_init_status(run_dir: Path = Path("/run/cloud-init")) -> list[str]:
    """What ``cloud-init status --long`` says, read from the files it reads (status.json, result.json and the
    generator's disabled marker under /run/cloud-init) rather than by running it: the command is a cloud-init Python
    start, seconds of CPU on an emulated node. Lines: ``status: done|error|running|not started|disabled``,
    ``detail: DATASOURCE``, and ``errors: ...`` when a stage recorded any."""
    if (run_dir / "disabled").exists():
        return ["status: disabled"]
    status = _json_v1(run_dir / "status.json")
    if status is None:
        return ["status: not started"]
    result = _json_v1(run_dir / "result.json")  # written when the last stage (modules-final) ends
    errors = [
        f"{stage}: {error}"
        for stage, value in sorted(status.items())
        if isinstance(value, dict)
        for error in value.get("errors") or []
    ]
    if not errors and result is not None:
        errors = [str(error) for error in result.get("errors") or []]
    state = "error" if errors else ("done" if result is not None else "running")
    lines = ["status: " + state, "detail: " + str(status.get("datasource") or "")]
    if errors:
        lines.append("errors: " + "; ".join(errors))
    return lines


def _unit(name: str) -> dict[str, str]:
    _, out = _run(["systemctl", "show", "-p", UNIT_PROPS, name])
    props = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def _read(path: str, limit: int = MAX_FILE) -> str:
    try:
        with Path(path).open("rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError as exc:
        return f"<unreadable: {exc.strerror}>"


def _files() -> dict[str, str]:
    found = {}
    for pattern in AGENT_FILE_GLOBS:
        folder, _, name = pattern.rpartition("/")
        for path in sorted(Path(folder).glob(name)):
            if path.is_file():
                found[str(path)] = _read(str(path))
    return found


def _container_run() -> dict[str, object]:
    if not Path(PROBE_IMAGE).is_file():
        return {"ran": False, "detail": "no probe image on this disk"}
    ns = ["ctr", "--namespace", "nodeforge-probe"]
    rc, out = _run([*ns, "images", "import", "--all-platforms", PROBE_IMAGE], timeout=120)
    if rc != 0:
        return {"ran": False, "detail": "import failed: " + out[-400:]}
    ref = ""
    for line in out.splitlines():
        for word in line.split():
            if ":" in word and "/" in word and not word.startswith("sha256"):
                ref = word
                break
        if ref:
            break
    if not ref:
        _, listing = _run([*ns, "images", "ls", "-q"])
        ref = listing.split()[0] if listing.split() else ""
    rc, out = _run([*ns, "run", "--rm", ref, "nodeforge-probe", "echo", "container-ok"], timeout=120)
    return {"ran": rc == 0 and "container-ok" in out, "image": ref, "output": out[-400:]}


def _mounts() -> list[dict[str, str]]:
    """/proc/self/mountinfo entries under the local-storage paths: where, device (major:minor), the folder of that
    file system mounted there (a bind mount's source), type and source."""
    found = []
    for line in _read("/proc/self/mountinfo", 4 * MAX_FILE).splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        tail = line.split(" - ", 1)[1].split()
        target = fields[4].replace("\\040", " ")
        if any(target == top or target.startswith(top + "/") for top in LOCAL_STORAGE_MOUNTS):
            found.append(
                {"target": target, "device": fields[2], "root": fields[3], "fstype": tail[0], "source": tail[1]}
            )
    return found


def _local_storage() -> dict[str, object]:
    """What the node made of its instance-store disks: their by-id names, the md arrays, the mounts and units."""
    by_id = Path("/dev/disk/by-id")
    disks = {}
    if by_id.is_dir():
        for link in sorted(by_id.iterdir()):
            if "NVMe_Instance_Storage_" in link.name:
                disks[link.name] = str(link.resolve())
    arrays = {}
    md_dir = Path("/dev/md")
    if md_dir.is_dir():
        for link in sorted(md_dir.iterdir()):
            device = link.resolve()
            sys_md = Path("/sys/block") / device.name
            slaves = sys_md / "slaves"
            arrays[link.name] = {
                "device": str(device),
                "level": _read(str(sys_md / "md/level")).strip(),
                "members": sorted(p.name for p in slaves.iterdir()) if slaves.is_dir() else [],
                "fstype": _run(["blkid", "-s", "TYPE", "-o", "value", str(device)])[1].strip(),
            }
    units = {}
    _, listing = _run(["systemctl", "list-units", "--all", "--type=mount", "--plain", "--no-legend", "--no-pager"])
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(("mnt-k8s", "var-lib-kubelet.", "var-lib-containerd.", "var-log-pods.", "var-lib-soci")):
            units[name] = _unit(name)
    return {
        "disks": disks,
        "arrays": arrays,
        "mdstat": _read("/proc/mdstat"),
        "mdadm_conf": _read("/.aws/mdadm.conf") if Path("/.aws/mdadm.conf").exists() else None,
        "mounts": _mounts(),
        "mount_units": units,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the report. ``--no-container``: skip the container run (a re-read after the boot's own report, where only
    the units, journal and files matter; the run is seconds of an emulated node's CPU)."""
    args = sys.argv[1:] if argv is None else argv
    _, journal = _run(["journalctl", "-b", "-u", "nodeforge-bootstrap.service", "-o", "cat", "--no-pager"])
    boots_rc, boots = _run(["journalctl", "--list-boots", "--no-pager"])
    report = {
        "units": {name: _unit(name) for name in UNITS},
        "bootstrap_journal": journal.splitlines()[-60:],
        "boots": len([line for line in boots.splitlines() if line.strip()]) if boots_rc == 0 else 0,
        "cloud_init_status": _cloud_init_status(),
        "cloud_init_result": _read("/run/cloud-init/result.json"),
        "cloud_init_output": _read("/var/log/cloud-init-output.log", 4 * MAX_FILE),
        "kubelet_args": _read(KUBELET_ARGS).splitlines() if Path(KUBELET_ARGS).exists() else None,
        "files": _files(),
        "container": {"ran": False, "detail": "not asked (--no-container)"}
        if "--no-container" in args
        else _container_run(),
        "local_storage": _local_storage(),
        "monotonic_now_us": int(float(_read("/proc/uptime").split()[0]) * 1e6),
    }
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
