"""Apply a plan under a root prefix: atomic writes (temporary file, fsync, rename, fsync of the directory; the
fsyncs of a run's files overlap), root:root ownership, the planned mode, and nothing touched when a file already
has the planned content and mode.

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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, TypeVar

    T = TypeVar("T")

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


def _write(root: Path, planned: PlannedFile, created: list[Path] | None = None) -> None:
    """Write one file atomically, on its own (putting a file back when a run is undone)."""
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
    _sync_directory(target.parent)


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


@dataclass
class _Staged:
    """A planned file written to its temporary file, not yet renamed over its target."""

    before: _Before
    descriptor: int
    temporary: str
    target: Path


def _stage(root: Path, planned: PlannedFile, before: _Before) -> _Staged:
    """The planned content in a new temporary file next to its target (mode and owner set; not yet fsynced)."""
    assert planned.content is not None
    target = _target(root, planned.path)
    try:
        _make_dirs(root, target.parent, before.created_dirs)
        descriptor, temporary = _temporary(target)
    except BaseException:
        _remove_dirs(before.created_dirs)
        raise
    staged = _Staged(before, descriptor, temporary, target)
    try:
        view = memoryview(planned.content)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fchmod(descriptor, planned.mode)
        if os.geteuid() == 0:
            os.fchown(descriptor, 0, 0)
    except BaseException:
        _discard([staged])
        raise
    return staged


def _close(staged: _Staged) -> None:
    if staged.descriptor >= 0:
        descriptor, staged.descriptor = staged.descriptor, -1
        os.close(descriptor)


def _discard(staged: list[_Staged]) -> None:
    """Temporary files never renamed: closed and removed, and the directories created for them; best effort."""
    for item in reversed(staged):
        try:  # noqa: SIM105 - contextlib is not otherwise imported
            _close(item)
        except OSError:
            pass
        _unlink(Path(item.temporary))
        _remove_dirs(item.before.created_dirs)


def _remove_dirs(created: list[Path]) -> None:
    """The directories a run created, newest first, while they are empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            break


def _all_at_once(function: Callable[[T], object], items: list[T]) -> tuple[T, BaseException] | None:
    """``function(item)`` for every item, each in its own thread, and wait for all; the first item (in order) whose
    call raised, with its exception, or None. For fsync: calls waiting on the disk together share journal commits and
    device cache flushes, where one after another each waits for its own (16 in a first run, most of the write time).
    The low-level _thread module: threading's import would cost more than it saves on a fast disk."""
    import _thread

    failures: dict[int, BaseException] = {}
    if len(items) < 2:
        for index, item in enumerate(items):
            try:
                function(item)
            except BaseException as exc:  # returned to the caller, which raises it
                failures[index] = exc
    else:
        counter = _thread.allocate_lock()
        finished = _thread.allocate_lock()
        finished.acquire()
        remaining = [len(items)]

        def call(index: int, item: T) -> None:
            try:
                function(item)
            except BaseException as exc:  # returned to the caller, which raises it
                failures[index] = exc
            finally:
                with counter:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    finished.release()

        for index, item in enumerate(items):
            try:
                _thread.start_new_thread(call, (index, item))
            except RuntimeError:  # no thread to be had: in this one
                call(index, item)
        finished.acquire()
    if not failures:
        return None
    first = min(failures)
    return items[first], failures[first]


def _raise_write_error(what: str, root: Path, exc: BaseException) -> NoReturn:
    if not isinstance(exc, OSError):
        raise exc
    raise WriteError(f"{what} under {root}", [f"{exc.strerror or exc}"]) from exc


def apply(root: Path, files: list[PlannedFile]) -> list[Outcome]:
    """Write what differs; report every file's outcome. On a failure, undo this run's changes and raise. Returns once
    every change is on disk.

    In steps, so that the disk waits overlap: every new content is written to a temporary file next to its target;
    the temporary files are fsynced (all at once); each is renamed over its target, and the files no longer wanted
    removed, in the plan's order; the directories holding them are fsynced (all at once). Nothing is replaced before
    every new content is on disk."""
    outcomes = []
    steps: list[tuple[_Before, _Staged | None]] = []  # in plan order: a staged file, or a removal (None)
    staged: list[_Staged] = []
    for planned in files:
        try:
            action = _status(root, planned)
            if action in ("created", "updated"):
                before = _before(root, planned)
                staged.append(_stage(root, planned, before))
                steps.append((before, staged[-1]))
            elif action == "removed":
                steps.append((_before(root, planned), None))
        except OSError as exc:
            _discard(staged)
            _raise_write_error(f"cannot write {planned.path}", root, exc)
        outcomes.append(Outcome(planned.path, action))
    failed = _all_at_once(lambda item: os.fsync(item.descriptor), staged)
    try:
        for item in staged:
            _close(item)
    except OSError as exc:
        failed = failed or (item, exc)
    if failed is not None:
        _discard(staged)
        _raise_write_error(f"cannot write {failed[0].before.path}", root, failed[1])
    changed: list[_Before] = []
    directories: set[Path] = set()
    for index, (before, item) in enumerate(steps):
        target = _target(root, before.path) if item is None else item.target
        try:
            if item is None:
                target.unlink()
            else:
                Path(item.temporary).replace(target)
        except OSError as exc:
            _discard([later for _, later in steps[index:] if later is not None])
            _undo(root, changed)
            _raise_write_error(f"cannot write {before.path}", root, exc)
        changed.append(before)
        directories.add(target.parent)
    failed_directory = _all_at_once(_sync_directory, sorted(directories))
    if failed_directory is not None:
        _undo(root, changed)
        _raise_write_error(f"cannot sync {failed_directory[0]}", root, failed_directory[1])
    return outcomes
