"""Apply a plan under a root prefix: atomic writes (temp file, fsync, rename; then each directory touched fsynced
once), root:root ownership, the planned mode, and nothing touched when a file already has the planned content and
mode.

A plan is applied as a whole: when a file cannot be written, the files already changed are put back as they
were (and the directories created for them removed), so a failed run leaves no partial configuration.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nodeforge.bootstrap.errors import WriteError
from nodeforge.bootstrap.plan import PlannedFile
from nodeforge.bootstrap.record import dataclass

# Directories the agent may have to create, and their modes (others get 0755).
DIRECTORY_MODES = {"/var/lib/kubelet": 0o700, "/etc/kubernetes/pki": 0o755}


@dataclass
class Outcome:
    path: str
    action: str  # "created", "updated", "removed", "unchanged", "absent" (not wanted and not there)
    diff: str = ""


@dataclass
class _Before:
    """A file as it was before this run changed it (content None: it did not exist), to undo the change."""

    path: str
    content: bytes | None
    mode: int
    created_dirs: list[Path]


def _unlink(path: Path) -> None:
    """``path.unlink(missing_ok=True)``, which Python 3.7 lacks."""
    try:  # noqa: SIM105 - contextlib is not otherwise imported
        path.unlink()
    except FileNotFoundError:
        pass


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
    import difflib  # --dry-run only

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


def _make_dirs(root: Path, directory: Path, created: list[Path] | None = None) -> None:
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        node_path = "/" + str(path.relative_to(root)) if path != root else "/"
        mode = DIRECTORY_MODES.get(node_path, 0o755)
        path.mkdir(mode=mode)
        if created is not None:
            created.append(path)
        path.chmod(mode)  # mkdir's mode is filtered by the umask


def _temporary(target: Path) -> tuple[int, str]:
    """A new file next to ``target`` (mode 0600, opened for writing) and its path; tempfile's job, without tempfile's
    import (random, shutil ...), which costs more than the rest of the write."""
    for attempt in range(100):
        path = target.parent / f".{target.name}.{os.getpid()}.{attempt}.tmp"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), str(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {target}")


def _write(
    root: Path, planned: PlannedFile, created: list[Path] | None = None, synced: set[Path] | None = None
) -> None:
    """Write one file atomically. Its directory is fsynced here, or added to ``synced`` for the caller to fsync
    once after all its files (one journal commit makes every rename durable, not one commit per file)."""
    target = _target(root, planned.path)
    assert planned.content is not None
    _make_dirs(root, target.parent, created)
    descriptor, temporary = _temporary(target)
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
        _unlink(Path(temporary))
        raise
    if synced is None:
        _sync_directory(target.parent)
    else:
        synced.add(target.parent)


def _sync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _before(root: Path, planned: PlannedFile) -> _Before:
    target = _target(root, planned.path)
    try:
        return _Before(planned.path, target.read_bytes(), stat.S_IMODE(target.stat().st_mode), [])
    except FileNotFoundError:
        return _Before(planned.path, None, planned.mode, [])


def _undo(root: Path, changed: list[_Before]) -> None:
    """Put back the files this run changed, newest first; best effort (the error being reported matters more)."""
    for before in reversed(changed):
        try:
            if before.content is None:
                _unlink(_target(root, before.path))
            else:
                _write(root, PlannedFile(before.path, before.content, before.mode))
            for directory in reversed(before.created_dirs):
                directory.rmdir()
        except OSError:
            continue


def apply(root: Path, files: list[PlannedFile]) -> list[Outcome]:
    """Write what differs; report every file's outcome. On a failure, undo this run's changes and raise. Returns once
    every change is on disk (files, renames and removals fsynced)."""
    outcomes = []
    changed: list[_Before] = []
    directories: set[Path] = set()  # of the files written or removed: fsynced once each, at the end
    for planned in files:
        try:
            action = _status(root, planned)
            if action in ("created", "updated"):
                changed.append(_before(root, planned))
                _write(root, planned, changed[-1].created_dirs, directories)
            elif action == "removed":
                changed.append(_before(root, planned))
                _target(root, planned.path).unlink()
                directories.add(_target(root, planned.path).parent)
        except OSError as exc:
            _undo(root, changed)
            raise WriteError(f"cannot write {planned.path} under {root}", [f"{exc.strerror or exc}"]) from exc
        outcomes.append(Outcome(planned.path, action))
    try:
        for directory in sorted(directories):
            _sync_directory(directory)
    except OSError as exc:
        _undo(root, changed)
        raise WriteError(f"cannot sync {directory} under {root}", [f"{exc.strerror or exc}"]) from exc
    return outcomes
