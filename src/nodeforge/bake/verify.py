"""Run the node checks (tests/infra) against an instance of a finished image."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nodeforge.bake import docker
from nodeforge.paths import repo_root


@dataclass
class VerifyResult:
    image: str
    passed: int
    failed: int
    skipped: int
    seconds: float
    report: Path
    junit: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0


@dataclass(frozen=True)
class CheckResult:
    """One check of a junit report: its benchmark id (3.2.1 ...), title, status and the failure message."""

    id: str
    title: str
    status: str  # pass | fail | skip
    message: str
    test: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_CIS_NAME = re.compile(r"^test_cis_(?:(?P<id>\d+(?:_\d+)+)_)?(?P<title>[a-z0-9_]+?)(?:\[.*\])?$")


def check_results(junits: list[Path], *, prefix: str = "test_cis_") -> list[CheckResult]:
    """Per-check outcomes of the tests named PREFIX... in the junit reports, ordered by benchmark id."""
    results = []
    for junit in junits:
        if not junit.exists():
            continue
        for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own pytest's report
            name = case.get("name", "")
            match = _CIS_NAME.match(name)
            if not name.startswith(prefix) or not match:
                continue
            status, message = "pass", ""
            for child in case:
                if child.tag in {"failure", "error"}:
                    status, message = "fail", (child.get("message") or "").strip()
                elif child.tag == "skipped":
                    status, message = "skip", (child.get("message") or "").strip()
            check_id = match.group("id").replace("_", ".") if match.group("id") else "legacy"
            title = match.group("title").replace("_", " ")
            results.append(CheckResult(check_id, title, status, message.splitlines()[0] if message else "", name))
    return sorted(results, key=lambda r: ([int(x) for x in r.id.split(".")] if r.id[0].isdigit() else [99], r.title))


def _count(junit: Path) -> tuple[int, int, int]:
    root = ET.parse(junit).getroot()  # noqa: S314 - our own pytest's report
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests - failed - skipped, failed, skipped


def verify_image(image: str, *, out_dir: Path, markers: str | None = None, keep: bool = False) -> VerifyResult:
    """Start a systemd instance of IMAGE and run every check of tests/infra against it."""
    if not docker.image_exists(image):
        raise docker.DockerError(f"image not found: {image}")
    labels = docker.image_labels(image)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "verify.log"
    env = dict(os.environ)
    if "org.nodeforge.kubernetes-version" in labels:
        env["NODEFORGE_KUBERNETES_VERSION"] = labels["org.nodeforge.kubernetes-version"]
    started = time.monotonic()
    totals = [0, 0, 0]
    junits: list[Path] = []
    # Booted instance for the node checks; the image as shipped (not booted: booting writes a machine-id,
    # wtmp and a journal) for the sysprep checks.
    passes = [
        ("booted", "not sysprep and not verified_download and not os_packages", docker.start_instance),
        ("static", "sysprep", docker.start_static),
    ]
    with log.open("w") as handle:
        for label, selection, start in passes:
            expr = f"({selection}) and ({markers})" if markers else selection
            name = f"nodeforge-verify-{label}-{uuid.uuid4().hex[:8]}"
            junit = out_dir / f"verify-{label}.xml"
            junit.unlink(missing_ok=True)
            start(image, name)
            try:
                cmd = [
                    sys.executable, "-m", "pytest", str(repo_root() / "tests" / "infra"),
                    f"--hosts=docker://{name}", "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", expr,
                ]  # fmt: skip
                handle.write(f"== {label} instance: -m '{expr}'\n")
                handle.flush()
                subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False, cwd=repo_root())
            finally:
                if not keep:
                    docker.remove(name)
            junits.append(junit)
            counts = _count(junit) if junit.exists() else (0, 1, 0)
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
    passed, failed, skipped = totals
    return VerifyResult(image, passed, failed, skipped, time.monotonic() - started, log, junits)


_SSH_TARGET = re.compile(r"^(?P<user>[a-z_][a-z0-9_.-]*)@(?P<host>[A-Za-z0-9.:\[\]-]+?)(?::(?P<port>\d{1,5}))?$")


def parse_ssh_target(target: str) -> tuple[str, str, int]:
    """USER@HOST[:PORT] -> (user, host, port); ValueError naming the target otherwise."""
    match = _SSH_TARGET.match(target)
    if not match:
        raise ValueError(f"--ssh {target!r}: expected USER@HOST[:PORT], e.g. ec2-user@127.0.0.1:2222")
    port = int(match.group("port") or 22)
    if not 0 < port < 65536:
        raise ValueError(f"--ssh {target!r}: port {port} out of range")
    return match.group("user"), match.group("host").strip("[]"), port


def verify_ssh(
    target: str,
    *,
    out_dir: Path,
    identity_file: Path | None = None,
    markers: str | None = None,
    kubernetes_version: str | None = None,
) -> VerifyResult:
    """Run the node checks of tests/infra over SSH against a running node (testinfra's ssh backend, sudo).

    The same selection as a booted image instance (sysprep's checks are about the image as shipped, not a node
    that has booted). Host keys are per instance and new at every first boot: they are not pinned here.
    """
    user, host, port = parse_ssh_target(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "verify-ssh.log"
    junit = out_dir / "verify-ssh.xml"
    junit.unlink(missing_ok=True)
    ssh_config = out_dir / "ssh_config"
    lines = [
        "Host *",
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  ConnectTimeout 20",
        "  ServerAliveInterval 15",
        "  ControlMaster auto",
        f"  ControlPath {out_dir}/cm-%C",
        "  ControlPersist 120",
    ]
    if identity_file is not None:
        lines += [f"  IdentityFile {identity_file}", "  IdentitiesOnly yes"]
    ssh_config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    if kubernetes_version:
        env["NODEFORGE_KUBERNETES_VERSION"] = kubernetes_version
    selection = "not sysprep and not verified_download and not os_packages"
    expr = f"({selection}) and ({markers})" if markers else selection
    cmd = [
        sys.executable, "-m", "pytest", str(repo_root() / "tests" / "infra"),
        f"--hosts=ssh://{user}@{host}:{port}", f"--ssh-config={ssh_config}", "--sudo",
        "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", expr,
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("w") as handle:
        handle.write(f"== ssh {user}@{host}:{port}: -m '{expr}'\n")
        handle.flush()
        subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False, cwd=repo_root())
    passed, failed, skipped = _count(junit) if junit.exists() else (0, 1, 0)
    return VerifyResult(target, passed, failed, skipped, time.monotonic() - started, log, [junit])
