"""``kubelet_cis_violations``: the CIS EKS worker-node rules every kubelet configuration of nodeforge is held to.

The rules (src/nodeforge/bootstrap/data/cis_kubelet.json) and their one evaluator (nodeforge.bootstrap.cis) are the
bootstrap agent's: the role's assert, the agent at boot and tests/infra read the same rule set the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_SRC = Path(__file__).resolve().parents[3] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from nodeforge.bootstrap import cis  # noqa: E402 - after the path to this checkout's sources


def kubelet_cis_violations(config: dict[str, Any], flags: list[str] | None = None) -> list[str]:
    """Every rule ``config`` (with ``flags`` applied over it) breaks; [] when it passes."""
    return cis.violations(dict(config), list(flags or []))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kubelet_cis_violations": kubelet_cis_violations}
