"""Reading TOML on every Python the agent supports: :mod:`tomllib` (3.11+), else the ``tomli`` package.

Amazon Linux 2's python3 is 3.7 and AL2023's is 3.9: neither has tomllib. The bootstrap_agent role installs
``tomli`` (the package tomllib was taken from, same API) next to the agent where the node's python3 is older
than 3.11. Without either, reading TOML (the image's containerd config, TOML user data, ``spec.containerd.config``)
fails with :class:`TomlUnavailableError` naming what to install; nothing else needs them. The parser is
imported on first use only (it costs more than the rest of a typical run).
"""

from __future__ import annotations

from nodeforge.bootstrap.errors import BootstrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

TOMLI_VERSION = "2.0.1"  # the last tomli release installable on Python 3.7; the role pins the same


class TomlUnavailableError(BootstrapError):
    """Neither tomllib nor tomli is importable: this python3 cannot read TOML."""


class TOMLDecodeError(ValueError):
    """The text is not valid TOML (the parser's own message)."""


_parser: ModuleType | None = None


def parser() -> ModuleType:
    """tomllib, or tomli on Python < 3.11; TomlUnavailableError when neither is there."""
    global _parser
    if _parser is None:
        try:
            import tomllib as module
        except ImportError:
            try:
                import tomli as module  # type: ignore[no-redef]
            except ImportError:
                import sys

                raise TomlUnavailableError(
                    f"cannot read TOML: this python3 ({sys.version.split()[0]}) has no tomllib (Python 3.11+) and "
                    f"the tomli package is not installed (the bootstrap_agent role installs tomli=={TOMLI_VERSION} "
                    "on nodes whose python3 is older than 3.11)"
                ) from None
        _parser = module
    return _parser


def loads(text: str) -> dict[str, Any]:
    """The TOML document in ``text``; TOMLDecodeError (a ValueError) when it is not valid TOML."""
    module = parser()
    try:
        return module.loads(text)
    except module.TOMLDecodeError as exc:
        raise TOMLDecodeError(str(exc)) from None
