"""AWS region names, checked against botocore's partition data (``botocore/data/partitions.json``).

The file is read directly (7 kB of JSON) instead of importing botocore: read commands stay fast. A name that is
no region of any partition is refused with the closest known names ("did you mean").
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache

from nodeforge.catalog.errors import InputError

LOCAL_REGION = "local"
_DATA = os.path.join("botocore", "data", "partitions.json")  # noqa: PTH118 (no pathlib: fast start-up)


@cache
def partitions_file() -> str | None:
    """botocore's partitions.json on sys.path (the installed botocore), without importing botocore."""
    for entry in sys.path:
        candidate = os.path.join(entry or ".", _DATA)  # noqa: PTH118
        if os.path.isfile(candidate):  # noqa: PTH113
            return candidate
    return None


@cache
def known_regions() -> dict[str, str]:
    """region -> partition id for every region botocore knows (the ``*-global`` pseudo-regions left out)."""
    path = partitions_file()
    if path is None:
        raise InputError("cannot check AWS region names: botocore is not installed (pip install botocore)")
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot check AWS region names: {path}: {exc}") from None
    regions: dict[str, str] = {}
    for partition in document.get("partitions", []):
        for region in partition.get("regions", {}):
            if not region.endswith("-global"):
                regions[region] = partition["id"]
    return regions


def suggest(value: str, limit: int = 3) -> list[str]:
    import difflib

    return difflib.get_close_matches(value.strip().lower(), sorted(known_regions()), n=limit, cutoff=0.6)


def problem(value: str) -> str | None:
    """Why ``value`` is not an AWS region (with the closest names), or None when it is one."""
    if value in known_regions():
        return None
    close = suggest(value)
    names = ", ".join(close[:-1]) + " or " + close[-1] if len(close) > 1 else "".join(close)
    hint = f"; did you mean {names}?" if close else f" ({len(known_regions())} regions known)"
    return f"{value!r} is not an AWS region in botocore's partition data{hint}"


def check_region(value: str, option: str = "--region", *, allow_local: bool = False) -> str:
    """``value`` if it is a known AWS region (or 'local' when allowed); InputError naming the option otherwise."""
    if allow_local and value == LOCAL_REGION:
        return value
    why = problem(value)
    if why:
        local = " (or 'local' for Docker images)" if allow_local else ""
        raise InputError(f"{option} {why}{local}")
    return value
