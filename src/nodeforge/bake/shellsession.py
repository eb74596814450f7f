"""The node checks' commands through one shell session: testinfra backends that keep a root shell open on the node.

testinfra's backends start every command on its own: its ssh backend a new SSH session and, with ``--sudo``, its own
``sudo /bin/sh -c`` (a new sshd session process, PAM for the session and again for sudo, sudo's policy, then the
shell: on a node under software emulation about half a second of the guest's CPU per command, measured on the baked
image: 0.58 s for a multiplexed ``sudo true``, 0.014 s for ``true`` in a shell already open); its docker backend a
``docker exec`` (the docker client, the daemon, the shim and runc: 57 ms of this machine's CPU per command). The
checks run hundreds of commands. These backends open one session running ``/bin/sh`` (``sudo -n /bin/sh`` with
sudo) and run each command in it as the plain backend's ``/bin/sh -c COMMAND`` would run it (in a subshell of that
shell, stdin from /dev/null), keeping each command's stdout, stderr and exit status apart: the shell writes them to
files in a private directory (on a tmpfs: /run over SSH, /dev/shm in a container, so nothing lands in the image's file
system) and sends them back each followed by a marker line (random per session), so binary or unterminated output
comes back exact.

Schemes (registered by tests/infra/conftest.py): ``nodeforge-ssh://USER@HOST:PORT`` (`nodeforge verify --ssh`,
nodeforge.bake.sshshell) and ``nodeforge-docker://CONTAINER`` (`nodeforge verify IMAGE`, `nodeforge verify-build
docker://...`, Molecule's verify step). A command run with a different sudo setting than the shell's
(``host.sudo("other")``) goes through the plain backend.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import select
import shlex
import subprocess
import tempfile
import time
from typing import Any

from testinfra.backend import base
from testinfra.backend.docker import DockerBackend

COMMAND_TIMEOUT = 900.0  # seconds one command may take before the session is given up
START_TIMEOUT = 120.0
SSH_SCHEME = "nodeforge-ssh"
DOCKER_SCHEME = "nodeforge-docker"
# testinfra's backend registry entries (tests/infra/conftest.py adds them): scheme -> class path, loaded on first use
BACKEND_CLASSES = {
    SSH_SCHEME: "nodeforge.bake.sshshell.PersistentShellSshBackend",
    DOCKER_SCHEME: "nodeforge.bake.shellsession.PersistentShellDockerBackend",
}


class ShellSessionError(RuntimeError):
    """The node's shell session could not start, died, or stopped answering."""


class PersistentShell(base.BaseBackend):
    """The session, for a testinfra backend class listed after it: that class's ``run`` serves the commands the
    session cannot (another sudo setting); ``session_argv`` is the command that opens the shell."""

    # tmpfs directories for the commands' output files, tried in order (then the shell's temporary directory)
    PRIVATE_DIRS: tuple[str, ...] = ("/run",)

    def __init__(self, hostspec: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(hostspec, *args, **kwargs)
        self._proc: subprocess.Popen[bytes] | None = None
        self._shell_sudo: tuple[bool, str | None] | None = None
        self._marker = ""
        self._buffer = b""
        # the sessions' own stderr (ssh, sudo), for error messages; kept as long as the backend
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        atexit.register(self.close)

    # --- testinfra's interface ---

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        text = self.quote(command, *args)
        if self._shell_sudo is not None and self._shell_sudo != (self.sudo, self.sudo_user):
            return super().run(command, *args, **kwargs)  # host.sudo(OTHER) inside a check: its own session
        if self._proc is None:
            self._start()
        rc, stdout, stderr = self._exchange(text)
        return self.result(rc, self.encode(text), stdout, stderr)

    # --- the session ---

    def session_argv(self, remote: str) -> list[str]:
        """The local command that runs shell command REMOTE on the node with its stdin and stdout as the session."""
        raise NotImplementedError

    def _remote_shell(self) -> str:
        if not self.sudo:
            return "/bin/sh"
        if self.sudo_user is None:
            return "sudo -n /bin/sh"
        return self.quote("sudo -n -u %s /bin/sh", self.sudo_user)

    def _start(self) -> None:
        self._marker = f"NODEFORGE-{secrets.token_hex(8)}"
        self._proc = subprocess.Popen(
            self.session_argv(self._remote_shell()), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._shell_sudo = (self.sudo, self.sudo_user)
        self._buffer = b""
        tries = " || ".join(f"mktemp -d -p {place} nodeforge-verify.XXXXXX 2>/dev/null" for place in self.PRIVATE_DIRS)
        # a private directory for each command's output, on a tmpfs (PRIVATE_DIRS) when the shell may write there,
        # else the user's temporary directory; removed when the shell exits. Made under umask 077; the commands run
        # with the shell's own umask, as the plain backend's would.
        self._send(
            f'_nf_u=$(umask); umask 077; _nf_d=$({tries} || mktemp -d) || exit 97; umask "$_nf_u"\n'
            f"trap 'rm -rf \"$_nf_d\"' EXIT\necho {self._marker} ready\n"
        )
        line = self._read_line(time.monotonic() + START_TIMEOUT)
        if line != f"{self._marker} ready":
            raise ShellSessionError(f"{self.hostname}: the shell session did not start: {line!r}{self._session_log()}")

    def _exchange(self, command: str) -> tuple[int, bytes, bytes]:
        # The command runs in a subshell of the session's shell (its own environment, `exit` and `cd` stay in it;
        # the session's variables are unset there), which is what `/bin/sh -c COMMAND` would run, without a shell's
        # exec; then its stdout, a marker line, its stderr and a marker line with its status, one `cat` per
        # non-empty output (the rest are shell builtins). Measured on the baked image under emulation, guest CPU per
        # command: `/bin/true` 0.19 s with `sh -c`, `stat` and `cat` -> 0.055 s; `stat FILE` 0.23 -> 0.135 s; the
        # booted node's whole check run 70 -> 53 s.
        m = self._marker
        self._send(
            f'( unset _nf_d _nf_u _nf_r; eval {shlex.quote(command)} ) </dev/null >"$_nf_d/o" 2>"$_nf_d/e"; _nf_r=$?; '
            f'[ -s "$_nf_d/o" ] && cat "$_nf_d/o"; printf \'\\n%s out\\n\' {m}; '
            f'[ -s "$_nf_d/e" ] && cat "$_nf_d/e"; printf \'\\n%s rc %s\\n\' {m} "$_nf_r"\n'
        )
        deadline = time.monotonic() + COMMAND_TIMEOUT
        stdout = self._read_until(f"\n{m} out\n".encode(), deadline)
        stderr = self._read_until(f"\n{m} rc ".encode(), deadline)
        rc = self._read_line(deadline)
        if not rc.isdigit():
            self.close()
            raise ShellSessionError(f"{self.hostname}: the shell session is out of step (status {rc!r}) for {command}")
        return int(rc), stdout, stderr

    def _send(self, text: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(text.encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.close()
            raise ShellSessionError(f"{self.hostname}: the shell session is gone ({exc}){self._session_log()}") from exc

    def _fill(self, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        remaining = deadline - time.monotonic()
        ready = select.select([fd], [], [], remaining)[0] if remaining > 0 else []
        if not ready:  # the deadline is the command's (COMMAND_TIMEOUT) or the session start's (START_TIMEOUT)
            self.close()
            raise ShellSessionError(f"{self.hostname}: no answer from the shell session before its deadline")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.close()
            raise ShellSessionError(f"{self.hostname}: the shell session ended{self._session_log()}")
        self._buffer += chunk

    def _read_line(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            self._fill(deadline)
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")

    def _read_until(self, token: bytes, deadline: float) -> bytes:
        """What the session sent before TOKEN (a marker line: random per session, so no output holds it)."""
        start = 0
        while (at := self._buffer.find(token, start)) < 0:
            start = max(0, len(self._buffer) - len(token) + 1)
            self._fill(deadline)
        data, self._buffer = self._buffer[:at], self._buffer[at + len(token) :]
        return data

    def _session_log(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return f": {text}" if text else ""

    def close(self) -> None:
        proc, self._proc = self._proc, None
        self._shell_sudo = None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the shell reads end of input, exits, its trap removes the directory
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PersistentShellDockerBackend(PersistentShell, DockerBackend):
    """``nodeforge-docker://CONTAINER[?sudo=...]``: one ``docker exec -i CONTAINER /bin/sh`` for all commands."""

    NAME = DOCKER_SCHEME
    # /dev/shm: the container's own tmpfs, never in an image or its layer (a mktemp -d of mode 0700 in it)
    PRIVATE_DIRS = ("/dev/shm", "/run")  # noqa: S108

    def session_argv(self, remote: str) -> list[str]:
        user = ["-u", self.user] if self.user is not None else []
        return ["docker", "exec", "-i", *user, self.name, "/bin/sh", "-c", remote]
