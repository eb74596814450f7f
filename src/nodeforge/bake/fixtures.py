"""Test fixtures: stand-in EKS artifacts (kubelet & co.) and a tiny OCI image for containerd.

The real kubelet, ecr-credential-provider and aws-iam-authenticator cannot be downloaded on this machine.
These fixtures are small shell scripts, clearly marked as test fixtures, laid out exactly like the EKS
bucket (<version>/<build date>/bin/linux/<arch>/<name> with <name>.sha256 beside each), so the roles'
download, verification and installation code runs unchanged against them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

FIXTURE_MARKER = "NODEFORGE TEST FIXTURE"
ARTIFACT_NAMES = ("kubelet", "ecr-credential-provider", "aws-iam-authenticator")
BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class Release:
    """One EKS release in the artifact bucket layout."""

    version: str
    build_date: str
    arch: str = "amd64"

    def path(self, name: str) -> str:
        return f"{self.version}/{self.build_date}/bin/linux/{self.arch}/{name}"


def fixture_script(name: str, version: str) -> bytes:
    """A stand-in binary: answers --version like the real tool and says it is a fixture."""
    if name == "kubelet":
        version_line = f"Kubernetes v{version}"
    elif name == "aws-iam-authenticator":
        version_line = f'{{"Version":"v{version}","Commit":"{FIXTURE_MARKER}"}}'
    else:
        version_line = f"ecr-credential-provider v{version}"
    head = (
        "#!/bin/sh\n"
        f"# {FIXTURE_MARKER}: stand-in for {name} {version}; not the real binary.\n"
        'case "$1" in\n'
        f"  --version|version) echo '{version_line}'; exit 0 ;;\n"
        "esac\n"
    )
    if name == "kubelet":
        return (head + _KUBELET_RUN.replace("@VERSION@", version)).encode()
    return (head + f"echo '{FIXTURE_MARKER}: {name} cannot run for real here' >&2\nexit 1\n").encode()


KUBELET_ARGS_RECORD = "/run/nodeforge-fixture/kubelet.args"
"""Where the kubelet stand-in records the arguments it was started with (one per line)."""

# Started by kubelet.service, the stand-in does what a booted node can check without a cluster: it refuses to
# start without readable --config and --kubeconfig files (as the kubelet does), records its arguments, says in
# the journal that it is a fixture, and then stays up like a running kubelet.
_KUBELET_RUN = f"""config=
kubeconfig=
prev=
for arg in "$@"; do
    case "$prev" in --config) config="$arg" ;; --kubeconfig) kubeconfig="$arg" ;; esac
    case "$arg" in --config=*) config="${{arg#*=}}" ;; --kubeconfig=*) kubeconfig="${{arg#*=}}" ;; esac
    prev="$arg"
done
for f in "$config" "$kubeconfig"; do
    if [ -z "$f" ] || [ ! -r "$f" ]; then
        echo "{FIXTURE_MARKER}: kubelet: --config and --kubeconfig must name readable files (got '$f')" >&2
        exit 1
    fi
done
mkdir -p "$(dirname {KUBELET_ARGS_RECORD})"
printf '%s\\n' "$@" > {KUBELET_ARGS_RECORD}
echo "{FIXTURE_MARKER}: kubelet v@VERSION@ started (not the real kubelet) with: $*" >&2
exec sleep infinity
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_artifact_tree(root: Path, releases: list[Release]) -> dict[str, str]:
    """Write fixture artifacts and their .sha256 files; return {relative path: sha256}."""
    digests: dict[str, str] = {}
    for release in releases:
        for name in ARTIFACT_NAMES:
            rel = release.path(name)
            data = fixture_script(name, release.version)
            digest = hashlib.sha256(data).hexdigest()
            target = root / rel
            if not (target.is_file() and sha256_file(target) == digest):
                _write_atomic(target, data, 0o755)
            _write_atomic(root / f"{rel}.sha256", f"{digest}  {name}\n".encode())
            digests[rel] = digest
    return digests


SSM_AGENT_DEB_PATH = "amazon-ssm-agent/fixture/debian_amd64/amazon-ssm-agent.deb"
SSM_AGENT_FIXTURE_VERSION = "0.0.0+nodeforge.fixture"


def build_ssm_agent_deb(root: Path) -> str:
    """A labelled stand-in amazon-ssm-agent .deb (and its .sha256) at SSM_AGENT_DEB_PATH below root; returns the
    sha256. AWS publishes the real agent for Debian as a signed .deb outside any apt repository; no AWS endpoint
    can be reached here, so the roles' download, verification, install and enable path runs on this stand-in: a
    unit that stays up and a binary that says it is a fixture."""
    target = root / SSM_AGENT_DEB_PATH
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "pkg"
        files = {
            "DEBIAN/control": (
                "Package: amazon-ssm-agent\n"
                f"Version: {SSM_AGENT_FIXTURE_VERSION}\n"
                "Architecture: all\n"
                "Maintainer: nodeforge <dev@nodeforge.invalid>\n"
                f"Description: {FIXTURE_MARKER}: stand-in for the AWS Systems Manager agent\n"
                " Not the real agent: it answers --version and otherwise idles.\n"
            ),
            "usr/bin/amazon-ssm-agent": (
                "#!/bin/sh\n"
                f"# {FIXTURE_MARKER}: stand-in for amazon-ssm-agent; not the real agent.\n"
                'if [ "$1" = --version ]; then\n'
                f'  echo "SSM Agent version: {SSM_AGENT_FIXTURE_VERSION} ({FIXTURE_MARKER})"; exit 0\n'
                "fi\n"
                f"echo '{FIXTURE_MARKER}: amazon-ssm-agent stand-in idling'\n"
                "exec sleep infinity\n"
            ),
            "lib/systemd/system/amazon-ssm-agent.service": (
                "[Unit]\n"
                f"Description=amazon-ssm-agent ({FIXTURE_MARKER})\n"
                "After=network-online.target\n\n"
                "[Service]\n"
                "ExecStart=/usr/bin/amazon-ssm-agent\n"
                "Restart=always\n\n"
                "[Install]\n"
                "WantedBy=multi-user.target\n"
            ),
        }
        for name, text in files.items():
            path = tree / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755 if name.startswith("usr/bin/") else 0o644)
            os.utime(path, (0, 0))
        if shutil.which("dpkg-deb") is None:
            raise FileNotFoundError("dpkg-deb not found: it builds the amazon-ssm-agent fixture package")
        built = Path(tmp) / "amazon-ssm-agent.deb"
        env = dict(os.environ, SOURCE_DATE_EPOCH="0")
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(built)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        data = built.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not (target.is_file() and sha256_file(target) == digest):
        _write_atomic(target, data)
    _write_atomic(root / f"{SSM_AGENT_DEB_PATH}.sha256", f"{digest}  amazon-ssm-agent.deb\n".encode())
    return digest


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _busybox_layer(busybox: Path) -> bytes:
    binary = busybox.read_bytes()
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for directory in ("bin", "etc", "tmp"):
        info = tarfile.TarInfo(directory)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if directory == "tmp" else 0o755
        members.append((info, None))
    info = tarfile.TarInfo("bin/busybox")
    info.size = len(binary)
    info.mode = 0o755
    members.append((info, binary))
    for applet in ("sh", "echo", "cat", "uname", "id", "true"):
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type = tarfile.SYMTYPE
        link.linkname = "busybox"
        members.append((link, None))
    return _tar_bytes(members)


def build_oci_image(
    out: Path, reference: str = "localhost/nodeforge/fixture-busybox:1", busybox: Path = BUSYBOX
) -> Path:
    """Write an OCI image archive (importable with `ctr images import`) holding a static busybox."""
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox} not found: install busybox-static to build the fixture image")
    layer = gzip.compress(_busybox_layer(busybox), mtime=0)
    layer_digest = hashlib.sha256(layer).hexdigest()
    diff_id = hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"org.nodeforge.fixture": "true"}},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_digest}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{layer_digest}",
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{manifest_digest}",
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": "1"},
                }
            ],
        }
    ).encode()
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, data in (
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", index),
        (f"blobs/sha256/{config_digest}", config),
        (f"blobs/sha256/{layer_digest}", layer),
        (f"blobs/sha256/{manifest_digest}", manifest),
    ):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        members.append((info, data))
    _write_atomic(out, _tar_bytes(members))
    return out
