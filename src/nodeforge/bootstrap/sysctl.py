"""The sysctl.d file the agent writes for ``settings.kernel.sysctl`` (TOML user data): its path and content.

Apart from :mod:`nodeforge.bootstrap.settings` (the TOML model, imported only for TOML user data) so that every
run can name the file -- and remove it when the settings no longer hold sysctls -- without that import.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

SYSCTL_PATH = "/etc/sysctl.d/90-nodeforge-settings.conf"
SYSCTL_HEADER = (
    "# Written by the nodeforge bootstrap agent from settings.kernel.sysctl; re-run the agent to change it.\n"
)


def render_sysctl(sysctls: Mapping[str, str]) -> str | None:
    """The sysctl.d file for ``settings.kernel.sysctl``, or None when there is none."""
    if not sysctls:
        return None
    return SYSCTL_HEADER + "".join(f"{key} = {value.strip()}\n" for key, value in sysctls.items())
