"""Bottlerocket-style immutable node image: sealed (erofs + dm-verity) root, A/B slots, state partition.

Modules, one purpose each:

* :mod:`~nodeforge.immutable.seal` -- rootfs tar -> erofs image + dm-verity hash tree + kernel + initramfs
* :mod:`~nodeforge.immutable.layout` -- the seal-time changes to the root (strip, /var skeleton, units)
* :mod:`~nodeforge.immutable.initramfs` (+ :mod:`~nodeforge.immutable.cpio`) -- the sealed-root initramfs
* :mod:`~nodeforge.immutable.verity` -- veritysetup format/verify, root hash recomputation
* :mod:`~nodeforge.immutable.record` -- the A/B boot record (priority, tries, successful) and slot descriptors
* :mod:`~nodeforge.immutable.update` -- update / boot attempt / mark-successful / rollback
* :mod:`~nodeforge.immutable.pipeline` -- :func:`bake_immutable` for the bake pipeline
* :mod:`~nodeforge.immutable.cli` -- ``nodeforge image ...``

Its disk and its boots live with the mutable variant's, in :mod:`nodeforge.vm`: :mod:`~nodeforge.vm.ab_disk` (the
self-booting A/B GPT disk and slot payloads), :mod:`~nodeforge.vm.ab_grub` + :mod:`~nodeforge.vm.grubenv` (GRUB's
slot choice and the grubenv it reads and writes), :mod:`~nodeforge.vm.ab_boot` (power on from the disk alone under
QEMU, check the sealed-root facts).
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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nodeforge.immutable.pipeline import ImmutableReport, bake_immutable


def __getattr__(name: str) -> object:
    # The pipeline pulls in nodeforge.vm (disk, QEMU), which imports this package's records and errors: loaded on
    # first use, not with the package (no import cycle, and `nodeforge image status` stays quick to start).
    if name in ("ImmutableReport", "bake_immutable"):
        from nodeforge.immutable import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
