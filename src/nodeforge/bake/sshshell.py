"""The node checks' commands over one SSH session: ``nodeforge-ssh://USER@HOST:PORT``, the testinfra backend of
`nodeforge verify --ssh` (the session itself: nodeforge.bake.shellsession, which says why one shell).
"""

from __future__ import annotations

import shlex

from testinfra.backend.ssh import SshBackend

from nodeforge.bake.shellsession import (
    COMMAND_TIMEOUT,
    SSH_SCHEME,
    START_TIMEOUT,
    PersistentShell,
    ShellSessionError,
)

__all__ = ["COMMAND_TIMEOUT", "SCHEME", "START_TIMEOUT", "PersistentShellSshBackend", "ShellSessionError"]

SCHEME = SSH_SCHEME


class PersistentShellSshBackend(PersistentShell, SshBackend):
    NAME = SCHEME

    def session_argv(self, remote: str) -> list[str]:
        return self.ssh_argv(remote)

    def ssh_argv(self, remote: str) -> list[str]:
        argv = ["ssh"]
        if self.ssh_extra_args:
            argv += shlex.split(self.ssh_extra_args)
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        if self.host.user:
            argv += ["-o", f"User={self.host.user}"]
        if self.host.port:
            argv += ["-o", f"Port={self.host.port}"]
        if self.ssh_identity_file:
            argv += ["-i", self.ssh_identity_file]
        if "connecttimeout" not in (self.ssh_extra_args or "").lower():
            argv += ["-o", f"ConnectTimeout={self.timeout}"]
        # one session of its own: never a master other ssh commands (scp of a put_file) would depend on
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-T", self.host.name, remote]
        return argv
