"""Errors raised by :mod:`nodeforge.immutable`; every message names the file it is about."""

from __future__ import annotations

from nodeforge.vm.disk import DiskImageError, RootfsTarError, RootfsTarNotFoundError

__all__ = [
    "DiskError",
    "ImmutableError",
    "RecordError",
    "RootfsTarError",
    "RootfsTarNotFoundError",
    "SealError",
    "SealedDirError",
    "ToolError",
    "UpdateRefusedError",
    "VerityError",
]


class ImmutableError(DiskImageError):
    """Base class for errors of the immutable (sealed, A/B) image pipeline."""


class ToolError(ImmutableError):
    """An external tool (mkfs.erofs, veritysetup, sfdisk, mkfs.ext4) is missing or failed."""


class SealError(ImmutableError):
    """The rootfs could not be sealed (layout problem, unsupported kernel, ...)."""


class SealedDirError(ImmutableError):
    """A sealed-root directory is missing files or its seal.json is invalid."""


class VerityError(ImmutableError):
    """dm-verity verification failed: the data does not match the root hash."""


class DiskError(ImmutableError):
    """The A/B disk image is missing, has the wrong layout, or a slot is too small."""


class RecordError(DiskError):
    """The boot record (slot state) is unreadable: both copies are missing or corrupt."""


class UpdateRefusedError(DiskError):
    """An update was refused (bad root hash, corrupt image); the active slot was left untouched."""
