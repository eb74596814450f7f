"""The one-shell testinfra backends (`nodeforge verify --ssh`, and `nodeforge-docker://` for containers): each command's
exit status, stdout and stderr come back exactly as its own `/bin/sh -c` would give them, through one session.

The session here is a local /bin/sh in place of `ssh NODE sudo -n /bin/sh` (the transport is the only difference);
the booted node's checks over real SSH run in the bake (tests/e2e/test_first_boot.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import testinfra

from nodeforge.bake import shellsession, sshshell

REPO = Path(__file__).resolve().parents[2]


class LocalShell(sshshell.PersistentShellSshBackend):
    """The session's shell on this machine, counted: how many sessions were opened."""

    sessions = 0

    def ssh_argv(self, remote: str) -> list[str]:
        type(self).sessions += 1
        return ["/bin/sh", "-c", remote.replace("sudo -n ", "")]


@pytest.fixture
def backend():
    LocalShell.sessions = 0
    backend = LocalShell("node.example:2222")
    yield backend
    backend.close()


def test_each_command_gets_its_own_status_and_streams(backend):
    result = backend.run("echo out; echo err >&2; exit 3")
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert backend.run("true").rc == 0 and backend.run("false").rc == 1
    assert LocalShell.sessions == 1  # one session for every command


def test_output_comes_back_byte_exact(backend):
    data = bytes(range(256)) * 300 + b"no newline at the end"
    write = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 300 + b'no newline at the end')"
    result = backend.run("python3 -c %s", write)
    assert result.stdout_bytes == data and result.stderr_bytes == b""
    assert backend.run("printf ''").stdout_bytes == b""


def test_a_command_cannot_break_the_session(backend):
    # a syntax error, exit, a read of stdin, quotes and a newline in the command: each stays in its own subshell
    assert backend.run("if then").rc == 2
    assert backend.run("exit 7").rc == 7
    assert backend.run("cat; echo read-nothing").stdout == "read-nothing\n"
    assert backend.run("echo 'it'\"'\"'s'\necho two").stdout == "it's\ntwo\n"
    assert backend.run("echo %s", "a b; $(rm -rf /)").stdout == "a b; $(rm -rf /)\n"
    assert LocalShell.sessions == 1


def test_each_command_starts_clean(backend):
    """Nothing a command sets stays for the next one, and the session's own variables are not the command's."""
    start = backend.run("pwd; umask").stdout
    assert backend.run("cd / && x=1 && export y=2 && umask 0").rc == 0
    assert backend.run("pwd; umask").stdout == start
    assert backend.run("echo ${x-unset} ${y-unset}").stdout == "unset unset\n"
    assert backend.run("echo ${_nf_d-unset} ${_nf_u-unset} ${_nf_r-unset}").stdout == "unset unset unset\n"


def test_commands_run_in_a_private_directory_gone_with_the_session(backend):
    stdout_file = backend.run("readlink /proc/self/fd/1").stdout.strip()
    private = stdout_file.rsplit("/", 1)[0]
    assert stdout_file.startswith("/run/nodeforge-verify.")  # root's shell: /run, not the image's /tmp
    assert backend.run("stat -c %a " + private).stdout.strip() == "700"
    backend.close()
    assert backend.run(f"test -e {private}").rc == 1  # a new session: the old one's directory is removed
    assert LocalShell.sessions == 2


def test_a_dead_session_is_named_and_the_next_command_starts_another(backend):
    backend.run("true")
    with pytest.raises(sshshell.ShellSessionError, match=r"node\.example: the shell session ended"):
        backend.run("kill -9 $$")  # the session's shell itself (a command runs in a subshell of it)
    assert backend.run("echo back").stdout == "back\n"
    assert LocalShell.sessions == 2


def test_a_session_that_cannot_start_says_why():
    class NoShell(sshshell.PersistentShellSshBackend):
        def ssh_argv(self, remote: str) -> list[str]:
            return ["/bin/sh", "-c", "echo 'sudo: a password is required' >&2; exit 1"]

    backend = NoShell("node.example")
    with pytest.raises(sshshell.ShellSessionError, match="sudo: a password is required"):
        backend.run("true")


def test_ssh_argv_is_one_plain_session_with_the_callers_options():
    backend = sshshell.PersistentShellSshBackend(
        "ec2-user@127.0.0.1:2222", ssh_config="/tmp/cfg", ssh_identity_file="/tmp/key", sudo=True
    )
    argv = backend.ssh_argv(backend._remote_shell())
    assert argv[:3] == ["ssh", "-F", "/tmp/cfg"]
    assert argv[3:7] == ["-o", "User=ec2-user", "-o", "Port=2222"] and "/tmp/key" in argv
    assert argv[-3:] == ["-T", "127.0.0.1", "sudo -n /bin/sh"]
    assert "ControlMaster=no" in argv
    other = sshshell.PersistentShellSshBackend("node", sudo=True, sudo_user="nobody")
    assert other._remote_shell() == "sudo -n -u nobody /bin/sh"


def test_a_check_asking_for_another_user_goes_through_plain_ssh(backend, monkeypatch):
    backend.sudo = True
    backend.run("true")
    plain = []
    monkeypatch.setattr(sshshell.SshBackend, "run", lambda self, command, *args, **kw: plain.append(command))
    backend.sudo_user = "nobody"
    backend.run("id -un")
    assert plain == ["id -un"] and LocalShell.sessions == 1


def test_the_scheme_is_registered_for_the_node_checks():
    """tests/infra/conftest.py registers nodeforge-ssh://, so `--hosts=nodeforge-ssh://...` reaches this backend."""
    import importlib.util

    from testinfra.backend import BACKENDS, get_backend_class

    spec = importlib.util.spec_from_file_location("infra_conftest", REPO / "tests" / "infra" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    BACKENDS.pop(sshshell.SCHEME, None)
    module.pytest_configure(SimpleNamespace(addinivalue_line=lambda *args: None))
    assert get_backend_class(sshshell.SCHEME) is sshshell.PersistentShellSshBackend
    host = testinfra.get_host(f"{sshshell.SCHEME}://ec2-user@127.0.0.1:2222", sudo=True)
    assert isinstance(host.backend, sshshell.PersistentShellSshBackend) and host.backend.host.port == "2222"
    assert host.backend.sudo and BACKENDS[sshshell.SCHEME].endswith("sshshell.PersistentShellSshBackend")


def _fake_docker(tmp_path: Path, monkeypatch) -> Path:
    """A `docker` on PATH that runs `docker exec [-i] [-u USER] CONTAINER CMD...` as CMD here, logging each call."""
    log = tmp_path / "docker.log"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        '[ "$1" = exec ] || exit 125\nshift\n'
        'while [ "${1#-}" != "$1" ]; do [ "$1" = -u ] && shift; shift; done\n'
        'shift\nexec "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return log


def test_docker_scheme_runs_every_command_in_one_exec(tmp_path, monkeypatch):
    from testinfra.backend import BACKENDS

    log = _fake_docker(tmp_path, monkeypatch)
    BACKENDS.setdefault(shellsession.DOCKER_SCHEME, "nodeforge.bake.shellsession.PersistentShellDockerBackend")
    host = testinfra.get_host("nodeforge-docker://nodeforge-verify-abc")
    assert isinstance(host.backend, shellsession.PersistentShellDockerBackend)
    result = host.run("echo out; echo err >&2; exit 4")
    assert (result.rc, result.stdout, result.stderr) == (4, "out\n", "err\n")
    assert host.file("/etc/hostname").exists and host.run("cat; echo %s", "a b").stdout == "a b\n"
    host.backend.close()
    calls = log.read_text().splitlines()
    assert calls == ["exec -i nodeforge-verify-abc /bin/sh -c /bin/sh"], calls


def test_docker_user_and_private_directory(tmp_path, monkeypatch):
    """The output files live in a private directory on the container's /dev/shm (not in its file system), gone with
    the session."""
    log = _fake_docker(tmp_path, monkeypatch)
    backend = shellsession.PersistentShellDockerBackend("nobody@box")
    before = set(Path("/dev/shm").glob("nodeforge-verify.*"))
    listing = backend.run("ls -d /dev/shm/nodeforge-verify.*")
    assert listing.rc == 0, listing.stderr
    during = {Path(line) for line in listing.stdout.split()} - before
    assert len(during) == 1 and oct(next(iter(during)).stat().st_mode & 0o777) == "0o700"
    backend.close()
    assert not any(path.exists() for path in during)
    assert log.read_text().split() == ["exec", "-i", "-u", "nobody", "box", "/bin/sh", "-c", "/bin/sh"]


def test_commands_keep_the_shells_umask(backend):
    """The private directory is made under umask 077; the commands themselves run with the shell's own umask, as
    their own `/bin/sh -c` would (a file a check creates gets the usual mode)."""
    import subprocess

    own = subprocess.run(["/bin/sh", "-c", "umask"], capture_output=True, text=True, check=True).stdout
    assert backend.run("umask").stdout == own
