"""Helpers of the end-to-end tests' background runs (tests/e2e/conftest.py: BAKE_RUNS)."""

from __future__ import annotations

import os
import threading

#: The nice value of the run's longest path: the bake (Packer, then its first boot and checks) and the immutable chain
#: after it. Every other job of the test run is at 0 or yields (Molecule scenarios at 5, see test_molecule.py).
LONGEST_PATH_NICENESS = -5


def yield_cpu(niceness: int = 5) -> None:
    """Set the calling thread's CPU priority, and that of the processes it starts (QEMU, Ansible, Packer) after this.

    A run that is not on the group's longest path yields (5): when the two CPUs are short it waits instead of slowing
    that path. The longest path asks for LONGEST_PATH_NICENESS; where a negative value is not allowed (no root, no
    CAP_SYS_NICE) it keeps 0. On Linux the nice value belongs to the thread, and a child process starts with its
    parent thread's.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except PermissionError:
        if niceness >= 0:
            raise


def lead_cpu() -> None:
    """The calling thread is on the longest path of the run: it goes first when the CPUs are short."""
    yield_cpu(LONGEST_PATH_NICENESS)
