"""First-boot benchmark: power-on to GRUB, cloud-init, bootstrap done, kubelet started, sshd started and answering.

For each user-data dialect and firmware, one launch of the same disk (a fresh instance each time). Seconds are
wall clock from QEMU's start for what the host sees on the serial console (GRUB's banner, cloud-init's
first stage, the probe's report) and for the SSH banner, and systemd's monotonic clock (from kernel start) for units.
Prints figures; asserts nothing. Everything runs under QEMU software emulation (no KVM here): compare runs with
each other, not with EC2.

Run: .venv/bin/python bench/boot.py build/local/TAG/disk/disk.img [--firmware bios uefi] [--dialect NAME ...]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from pathlib import Path

from nodeforge.vm.launch import USER_DATA_DIR, LaunchOptions, launch

DIALECTS = {"karpenter-al2023": "karpenter-al2023.mime", "mng-al2": "mng-al2.mime"}


def ssh_banner_after(port: int, started: float, timeout: float = 120) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return round(time.monotonic() - started, 1)
        except OSError:
            time.sleep(0.5)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("disk", type=Path)
    parser.add_argument("--firmware", nargs="+", default=["bios", "uefi"])
    parser.add_argument("--dialect", nargs="+", default=list(DIALECTS), choices=list(DIALECTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for dialect in args.dialect:
        for firmware in args.firmware:
            with tempfile.TemporaryDirectory(prefix="nodeforge-bench-boot-") as tmp:
                started = time.monotonic()
                node = launch(
                    LaunchOptions(
                        disk=args.disk,
                        work_dir=Path(tmp),
                        user_data=(USER_DATA_DIR / DIALECTS[dialect]).read_bytes(),
                        firmware=firmware,
                        ssh=True,
                        keep_running=True,
                    )
                )
                try:
                    banner = ssh_banner_after(node.ssh_port or 0, started)
                finally:
                    node.power_off()
                rows.append(
                    {
                        "dialect": dialect,
                        "firmware": firmware,
                        "ok": node.ok,
                        "grub_s": node.marks.get("grub"),
                        "cloud_init_s": node.marks.get("cloud_init"),
                        "bootstrap_done_s_since_kernel": node.unit_seconds("nodeforge-bootstrap.service"),
                        "kubelet_started_s_since_kernel": node.unit_seconds("kubelet.service"),
                        "sshd_started_s_since_kernel": node.unit_seconds("ssh.service"),
                        "report_s": node.seconds,
                        "ssh_banner_s": banner,
                    }
                )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[key]) for key in header))


if __name__ == "__main__":
    main()
