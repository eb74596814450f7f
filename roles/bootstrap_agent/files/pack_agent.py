"""Pack the nodeforge bootstrap agent into one reproducible tar for the bootstrap_agent role (runs on the controller).

The role unpacks it on the node with ansible.builtin.unarchive: one transfer and one module run instead of one copy
per file. unarchive decides "changed" with `tar --diff` (mode, owner, mtime, size, contents), so every member gets
fixed metadata -- root:root, 0755 directories, 0644 files, one constant mtime -- and the same sources give the same
answer from any checkout (a git checkout's mtimes are the time of the checkout). A changed source file differs in
size or contents and is unpacked again.

Usage: pack_agent.py SPEC_JSON, SPEC = {"dirs": [member, ...], "files": [[member, source path], ...]}.
Prints {"path": the tar (in the controller's temp dir; the role removes it), "members": count}.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

# 2024-01-01T00:00:00Z: any constant works; a plausible one keeps tar from warning about old time stamps.
MTIME = 1704067200


def member(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    spec = json.loads(argv[1])
    fd, path = tempfile.mkstemp(prefix="nodeforge-agent-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(set(spec["dirs"])):
                tar.addfile(member(name, tarfile.DIRTYPE, 0o755))
            for name, source in sorted(spec["files"]):
                data = Path(source).read_bytes()
                tar.addfile(member(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    except BaseException:
        Path(path).unlink()
        raise
    print(json.dumps({"path": path, "members": len(set(spec["dirs"])) + len(spec["files"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
