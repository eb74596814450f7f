"""Helpers of the end-to-end tests' background runs (tests/e2e/conftest.py: BAKE_RUNS)."""

from __future__ import annotations

import os
import threading


def yield_cpu(niceness: int = 5) -> None:
    """Lower the calling thread's CPU priority, and that of the processes it starts (QEMU, Ansible) after this.

    For a run that is not on the group's longest path (the immutable chain, then the bake's own boot and checks): when
    the two CPUs are short it waits, instead of slowing those. On Linux the nice value belongs to the thread, and a
    child process starts with its parent thread's.
    """
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
