"""Errors of the image catalog. Each carries the exit code the CLI uses for it."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # no pathlib at run time (read commands start fast)
    from pathlib import Path


class CatalogError(Exception):
    """Any failure the user can act on; the message names the field, file or image concerned."""

    exit_code = 1


class InputError(CatalogError):
    """A bad argument or option value."""

    exit_code = 2


class ManifestError(InputError):
    """A Packer manifest that cannot be ingested: names the file and the field (e.g. builds[0].custom_data.arch)."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {message}")


class NotFoundError(CatalogError):
    """No image matches a reference or a query."""

    exit_code = 3


class ConflictError(CatalogError):
    """The change contradicts what the catalog holds (an AMI already recorded for another build, ...)."""

    exit_code = 4


class RefusedError(CatalogError):
    """A guarded change refused (retire a stable image without --force, promote a retired one, ...)."""

    exit_code = 5


class SchemaError(CatalogError):
    """The catalog file is not a catalog, or was written by a newer nodeforge."""


class AwsError(CatalogError):
    """An AWS call failed; names the region and the operation."""
