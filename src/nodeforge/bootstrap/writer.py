"""Apply a plan under a root prefix: atomic writes (temp file, fsync, rename), root:root ownership, the
planned mode, and nothing touched when a file already has the planned content and mode."""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodeforge.bootstrap.errors import WriteError
from nodeforge.bootstrap.plan import PlannedFile

# Directories the agent may have to create, and their modes (others get 0755).
DIRECTORY_MODES = {"/var/lib/kubelet": 0o700, "/etc/kubernetes/pki": 0o755}


@dataclass
class Outcome:
    path: str
    action: str  # "created", "updated", "removed", "unchanged", "absent" (not wanted and not there)
    diff: str = ""


def _target(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _status(root: Path, planned: PlannedFile) -> str:
    target = _target(root, planned.path)
    try:
        info = target.lstat()
    except FileNotFoundError:
        return "absent" if planned.content is None else "created"
    if planned.content is None:
        return "removed"
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != planned.mode:
        return "updated"
    owned = os.geteuid() != 0 or (info.st_uid, info.st_gid) == (0, 0)
    return "unchanged" if owned and target.read_bytes() == planned.content else "updated"


def _diff(root: Path, planned: PlannedFile) -> str:
    target = _target(root, planned.path)
    try:
        before = target.read_bytes().decode("utf-8", "replace").splitlines(keepends=True)
    except (FileNotFoundError, IsADirectoryError):
        before = []
    after = [] if planned.content is None else planned.content.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(before, after, fromfile=f"{planned.path} (current)", tofile=f"{planned.path} (new)")
    return "".join(lines)


def preview(root: Path, files: list[PlannedFile]) -> list[Outcome]:
    """What :func:`apply` would do, with unified diffs; touches nothing."""
    outcomes = []
    for planned in files:
        action = _status(root, planned)
        quiet = action in ("unchanged", "absent")
        outcomes.append(Outcome(planned.path, action, "" if quiet else _diff(root, planned)))
    return outcomes


def _make_dirs(root: Path, directory: Path) -> None:
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        node_path = "/" + str(path.relative_to(root)) if path != root else "/"
        mode = DIRECTORY_MODES.get(node_path, 0o755)
        path.mkdir(mode=mode)
        path.chmod(mode)  # mkdir's mode is filtered by the umask


def _write(root: Path, planned: PlannedFile) -> None:
    target = _target(root, planned.path)
    assert planned.content is not None
    _make_dirs(root, target.parent)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(planned.content)
            handle.flush()
            os.fchmod(handle.fileno(), planned.mode)
            if os.geteuid() == 0:
                os.fchown(handle.fileno(), 0, 0)
            os.fsync(handle.fileno())
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def apply(root: Path, files: list[PlannedFile]) -> list[Outcome]:
    """Write what differs; report every file's outcome."""
    outcomes = []
    for planned in files:
        action = _status(root, planned)
        try:
            if action in ("created", "updated"):
                _write(root, planned)
            elif action == "removed":
                _target(root, planned.path).unlink()
        except OSError as exc:
            raise WriteError(f"cannot write {planned.path} under {root}", [f"{exc.strerror or exc}"]) from exc
        outcomes.append(Outcome(planned.path, action))
    return outcomes
