"""Run the node checks (tests/infra) against an instance of a finished image."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

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
                    _docker_hosts(name), "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", expr,
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


def _schemes() -> ModuleType:
    """nodeforge.bake.shellsession, imported when a check run starts (it loads testinfra)."""
    from nodeforge.bake import shellsession

    return shellsession


def _docker_hosts(container: str) -> str:
    """pytest's --hosts for the checks in CONTAINER: all their commands through one `docker exec -i` shell."""
    return f"--hosts={_schemes().DOCKER_SCHEME}://{container}"


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
    """Run the node checks of tests/infra over SSH against a running node (one `sudo -n /bin/sh` session for all
    the commands: nodeforge.bake.sshshell).

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
        # a socket path must fit in 108 bytes: keep it short, whatever out_dir is
        f"  ControlPath {tempfile.mkdtemp(prefix='nfssh-', dir='/tmp')}/%C",
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
        f"--hosts={_schemes().SSH_SCHEME}://{user}@{host}:{port}", f"--ssh-config={ssh_config}", "--sudo",
        "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", expr,
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("w") as handle:
        handle.write(f"== ssh {user}@{host}:{port}: -m '{expr}'\n")
        handle.flush()
        subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False, cwd=repo_root())
    passed, failed, skipped = _count(junit) if junit.exists() else (0, 1, 0)
    return VerifyResult(target, passed, failed, skipped, time.monotonic() - started, log, [junit])


# --- the build verifies itself: the same checks against the live build instance, over Packer's communicator ---

BUILD_PASSES = (
    # (label, pytest -m selection). os_packages and verified_download checks need a fixture mirror beside the
    # instance (they are the Molecule scenarios' business); everything else runs, the sysprep checks included.
    ("node", "not sysprep and not verified_download and not os_packages"),
    ("sysprep", "sysprep"),
)


@dataclass
class BuildVerifyResult:
    target: str
    passed: int
    failed: int
    skipped: int
    checks: list[CheckResult]
    hygiene: dict[str, object]
    seconds: float
    report: Path
    junit: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0 and bool(self.hygiene.get("clean"))

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "ok": self.ok,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "cis": [check.to_dict() for check in self.checks],
            "hygiene": self.hygiene,
            "seconds": round(self.seconds, 2),
            "log": str(self.report),
        }


@dataclass(frozen=True)
class BuildTarget:
    """Where the build instance is: docker://CONTAINER, or ssh://USER@HOST:PORT with a private key file."""

    url: str
    ssh_key: Path | None = None
    sudo: bool = False

    def __post_init__(self) -> None:
        if self.url.startswith("docker://") and len(self.url) > len("docker://"):
            return
        match = re.fullmatch(r"ssh://([^@/\s]+)@([^:/\s]+)(?::(\d+))?", self.url)
        if not match:
            raise ValueError(f"{self.url!r} is neither docker://CONTAINER nor ssh://USER@HOST[:PORT]")
        if self.ssh_key is None or not self.ssh_key.is_file():
            raise ValueError(f"{self.url}: an ssh target needs --ssh-key FILE (got {self.ssh_key})")

    @property
    def is_docker(self) -> bool:
        return self.url.startswith("docker://")

    def ssh_options(self) -> list[str]:
        """ssh options for a build instance: its throw-away key, no known_hosts (its host key is new each build)."""
        return [
            "-i", str(self.ssh_key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def pytest_args(self, ssh_config: Path) -> list[str]:
        if self.is_docker:
            return [_docker_hosts(self.url.removeprefix("docker://"))]
        args = [f"--hosts={self.url}", f"--ssh-config={ssh_config}", f"--ssh-identity-file={self.ssh_key}"]
        return [*args, "--sudo"] if self.sudo else args

    def tar_command(self) -> list[str]:
        """A command streaming the instance's root filesystem as a tar on stdout (this file system only)."""
        tar = ["tar", "--one-file-system", "--numeric-owner", "-C", "/", "-cf", "-", "."]
        if self.is_docker:
            return ["docker", "exec", self.url.removeprefix("docker://"), *tar]
        match = re.fullmatch(r"ssh://([^@]+)@([^:]+)(?::(\d+))?", self.url)
        assert match is not None
        user, host, port = match.group(1), match.group(2), match.group(3) or "22"
        remote = " ".join((["sudo", "-n"] if self.sudo else []) + tar)
        return ["ssh", *self.ssh_options(), "-p", port, f"{user}@{host}", remote]


def scan_target(target: BuildTarget) -> dict[str, object]:
    """The hygiene scan of the live instance's root, streamed over the communicator (nothing written to disk)."""
    import tarfile

    from nodeforge.bake.hygiene import scan_members

    proc = subprocess.Popen(target.tar_command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            result = scan_members(tar).to_dict()
    except (tarfile.TarError, EOFError, OSError) as exc:
        proc.kill()
        proc.wait()
        return {"clean": False, "error": f"cannot read the instance's root as a tar: {exc}", "findings": []}
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    # GNU tar exits 1 when a file changed while it was read (live logs): the archive is still complete.
    if proc.wait() not in (0, 1):
        return {"clean": False, "error": f"tar on the instance failed: {stderr.strip()[-500:]}", "findings": []}
    return result


def verify_build(
    target: BuildTarget, *, out_dir: Path, hygiene: bool = True, phases: tuple[str, ...] = ("node", "sysprep")
) -> BuildVerifyResult:
    """Run the tests/infra suite (node checks, CIS table, sysprep checks) and the hygiene scan against a live
    build instance, before its image is registered. Nothing is started or removed: the target is Packer's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "verify-build.log"
    ssh_config = out_dir / "ssh_config"
    ssh_config.write_text(
        "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  IdentitiesOnly yes\n  LogLevel ERROR\n"
    )
    started = time.monotonic()
    totals = [0, 0, 0]
    junits: list[Path] = []
    with log.open("w") as handle:
        for label, selection in BUILD_PASSES:
            if label not in phases:
                continue
            junit = out_dir / f"verify-build-{label}.xml"
            junit.unlink(missing_ok=True)
            cmd = [
                sys.executable, "-m", "pytest", str(repo_root() / "tests" / "infra"), *target.pytest_args(ssh_config),
                "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", selection,
            ]  # fmt: skip
            handle.write(f"== {label} checks on {target.url}: -m '{selection}'\n")
            handle.flush()
            subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=False, cwd=repo_root())
            junits.append(junit)
            counts = _count(junit) if junit.exists() else (0, 1, 0)
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
    scan: dict[str, object] = scan_target(target) if hygiene else {"clean": True, "skipped": True}
    passed, failed, skipped = totals
    return BuildVerifyResult(
        target.url, passed, failed, skipped, check_results(junits), scan, time.monotonic() - started, log, junits
    )
