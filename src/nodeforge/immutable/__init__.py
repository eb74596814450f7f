"""Bottlerocket-style immutable node image: sealed (erofs + dm-verity) root, A/B slots, state partition.

Modules, one purpose each:

* :mod:`~nodeforge.immutable.seal` -- rootfs tar -> erofs image + dm-verity hash tree + kernel + initramfs
* :mod:`~nodeforge.immutable.layout` -- the seal-time changes to the root (strip, /var skeleton, units)
* :mod:`~nodeforge.immutable.initramfs` (+ :mod:`~nodeforge.immutable.cpio`) -- the sealed-root initramfs
* :mod:`~nodeforge.immutable.verity` -- veritysetup format/verify, root hash recomputation
* :mod:`~nodeforge.immutable.record` -- the A/B boot record (priority, tries, successful) and slot descriptors
* :mod:`~nodeforge.immutable.bootloader` (+ :mod:`~nodeforge.immutable.grubenv`) -- GRUB's slot choice, the grubenv
* :mod:`~nodeforge.immutable.disk` -- the self-booting GPT disk image (GRUB for BIOS and UEFI) and slot payloads
* :mod:`~nodeforge.immutable.update` -- update / boot attempt / mark-successful / rollback
* :mod:`~nodeforge.immutable.boot` -- boot under QEMU from the disk alone and check the sealed-root facts
* :mod:`~nodeforge.immutable.pipeline` -- :func:`bake_immutable` for the bake pipeline
* :mod:`~nodeforge.immutable.cli` -- ``nodeforge image ...``
"""

from __future__ import annotations

from nodeforge.immutable.errors import (
    DiskError,
    ImmutableError,
    RecordError,
    SealedDirError,
    SealError,
    ToolError,
    UpdateRefusedError,
    VerityError,
)
from nodeforge.immutable.pipeline import ImmutableReport, bake_immutable

__all__ = [
    "DiskError",
    "ImmutableError",
    "ImmutableReport",
    "RecordError",
    "SealError",
    "SealedDirError",
    "ToolError",
    "UpdateRefusedError",
    "VerityError",
    "bake_immutable",
]
