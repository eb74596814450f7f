"""The Kubernetes release catalog, read from the kubelet role's defaults (one place defines it), and the newest
build of a minor found by listing an artifact source (``kubelet_version = "latest"``).

An artifact source is laid out like the EKS bucket: ``<version>/<build date>/bin/linux/<arch>/kubelet``. It is
listed the way amazon-eks-ami's hack/latest-binaries.sh lists the bucket (S3 ListObjectsV2 under the minor's
prefix, newest version first, then newest build date), or, for a mirror, through its HTTP directory listings
(the fixture mirror, any autoindex server), or as a folder on this machine.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from nodeforge.bake.fixtures import Release
from nodeforge.paths import repo_root

# Virtual-hosted (bucket.s3.region.amazonaws.com, bucket.s3.amazonaws.com) and path-style S3 URLs.
_S3_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]+)\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")
_S3_PATH_HOST = re.compile(r"^s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "arm64": "arm64", "aarch64": "arm64"}


class ReleaseLookupError(LookupError):
    """No build found, or the source could not be listed: the message names the source and minor."""


def kubelet_releases(root: Path | None = None) -> dict[str, Release]:
    """Minor version -> Release for every entry of kubelet_releases (amd64)."""
    defaults = (root or repo_root()) / "roles" / "kubelet" / "defaults" / "main.yml"
    data = yaml.safe_load(defaults.read_text())
    releases = data.get("kubelet_releases")
    if not isinstance(releases, dict) or not releases:
        raise ValueError(f"{defaults}: kubelet_releases is missing or empty")
    return {
        str(minor): Release(version=str(entry["version"]), build_date=str(entry["build_date"]))
        for minor, entry in releases.items()
    }


def _key(version: str, build_date: str) -> tuple[tuple[int, ...], str]:
    return tuple(int(part) for part in version.split(".")), build_date


def newest(minor: str, arch: str, candidates: Iterable[tuple[str, str]]) -> Release:
    """The newest (version, build date) of MINOR among candidates; ReleaseLookupError when there is none."""
    builds = [(v, d) for v, d in candidates if _VERSION.match(v) and _DATE.match(d) and v.startswith(f"{minor}.")]
    if not builds:
        raise ReleaseLookupError(f"no kubelet build of Kubernetes {minor} for linux/{arch}")
    version, build_date = max(builds, key=lambda item: _key(*item))
    return Release(version=version, build_date=build_date, arch=arch)


def s3_location(source: str) -> tuple[str, str, str | None] | None:
    """(bucket, key prefix, region) of an s3:// or S3 https URL; None for any other source."""
    parts = urlsplit(source)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.strip("/"), None
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.hostname or ""
    virtual = _S3_VIRTUAL_HOST.match(host)
    if virtual:
        return virtual.group("bucket"), parts.path.strip("/"), virtual.group("region")
    path_style = _S3_PATH_HOST.match(host)
    if path_style and parts.path.strip("/"):
        bucket, _, prefix = parts.path.strip("/").partition("/")
        return bucket, prefix, path_style.group("region")
    return None


def latest_from_s3(
    bucket: str, prefix: str, minor: str, arch: str, client: Any = None, page_size: int | None = None
) -> Release:
    """Newest build of MINOR in an S3 bucket: ListObjectsV2 under '<prefix>/<minor>.' (paginated)."""
    if client is None:
        import boto3  # lazy: only this path needs it

        client = boto3.client("s3")
    base = f"{prefix}/" if prefix else ""
    pattern = re.compile(rf"^{re.escape(base)}([^/]+)/([^/]+)/bin/linux/{re.escape(arch)}/kubelet$")
    candidates = []
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=f"{base}{minor}.", PaginationConfig={"PageSize": page_size} if page_size else {}
    )
    for page in pages:
        for item in page.get("Contents", []):
            match = pattern.match(item["Key"])
            if match:
                candidates.append((match.group(1), match.group(2)))
    try:
        return newest(minor, arch, candidates)
    except ReleaseLookupError as exc:
        raise ReleaseLookupError(f"{exc} in s3://{bucket}/{base}") from None


def latest_from_folder(root: Path, minor: str, arch: str) -> Release:
    """Newest build of MINOR in a folder laid out like the bucket."""
    if not root.is_dir():
        raise ReleaseLookupError(f"artifact folder not found: {root}")
    candidates = [
        (version_dir.name, date_dir.name)
        for version_dir in root.glob(f"{minor}.*")
        for date_dir in version_dir.iterdir()
        if (date_dir / "bin" / "linux" / arch / "kubelet").is_file()
    ]
    try:
        return newest(minor, arch, candidates)
    except ReleaseLookupError as exc:
        raise ReleaseLookupError(f"{exc} in {root}") from None


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href" and value]


def _listing(fetch: Callable[[str], str], url: str) -> list[str]:
    """Entry names of an HTML directory listing (sub-folders without their trailing slash)."""
    parser = _Links()
    parser.feed(fetch(url))
    names = []
    for link in parser.links:
        name = link.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if name and name not in (".", ".."):
            names.append(name)
    return names


def _http_get(url: str, timeout: float = 30.0) -> str:
    import urllib.request  # lazy

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked by caller
        return response.read().decode("utf-8", "replace")


def latest_from_listing(base_url: str, minor: str, arch: str, fetch: Callable[[str], str] = _http_get) -> Release:
    """Newest build of MINOR behind an HTTP server with directory listings: versions newest first, each one's
    build dates newest first, until one carries bin/linux/<arch>/kubelet."""
    base = base_url.rstrip("/")
    try:
        versions = [
            name for name in _listing(fetch, f"{base}/") if name.startswith(f"{minor}.") and _VERSION.match(name)
        ]
        for version in sorted(versions, key=lambda v: _key(v, ""), reverse=True):
            dates = sorted((d for d in _listing(fetch, f"{base}/{quote(version)}/") if _DATE.match(d)), reverse=True)
            for build_date in dates:
                folder = f"{base}/{quote(version)}/{quote(build_date)}/bin/linux/{quote(arch)}/"
                try:
                    names = _listing(fetch, folder)
                except OSError:
                    continue
                if "kubelet" in names:
                    return Release(version=version, build_date=build_date, arch=arch)
    except OSError as exc:
        raise ReleaseLookupError(f"cannot list {base}/: {exc}") from exc
    raise ReleaseLookupError(f"no kubelet build of Kubernetes {minor} for linux/{arch} in {base}/")


def _s3_client(region: str | None) -> Any:
    """An S3 client; unsigned when no credentials are configured (the EKS bucket is publicly listable, as
    amazon-eks-ami's --no-sign-request listing shows)."""
    import boto3  # lazy: only the S3 path needs it
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    config = None if session.get_credentials() is not None else Config(signature_version=UNSIGNED)
    return session.client("s3", region_name=region or session.region_name or "us-west-2", config=config)


def latest_release(source: str, minor: str, arch: str = "amd64", *, s3_client: Any = None) -> Release:
    """Newest kubelet build of MINOR for ARCH (x86_64/amd64, arm64/aarch64) in an artifact source: an s3:// or S3
    https URL (listed with ListObjectsV2), another http(s) URL (its directory listings), or an absolute folder."""
    eks_arch = ARCHES.get(arch)
    if eks_arch is None:
        raise ReleaseLookupError(f"unknown architecture {arch!r}: one of {', '.join(sorted(ARCHES))}")
    if not re.fullmatch(r"1\.[1-9][0-9]*", minor):
        raise ReleaseLookupError(f"{minor!r} is not a Kubernetes minor version such as 1.33")
    location = s3_location(source)
    if location is not None:
        bucket, prefix, region = location
        if s3_client is None:
            s3_client = _s3_client(region)
        try:
            return latest_from_s3(bucket, prefix, minor, eks_arch, s3_client)
        except ReleaseLookupError:
            raise
        except Exception as exc:  # botocore errors: credentials, access, network
            raise ReleaseLookupError(f"cannot list s3://{bucket}/{prefix}: {exc}") from exc
    if source.startswith(("http://", "https://")):
        return latest_from_listing(source, minor, eks_arch)
    if source.startswith("/"):
        return latest_from_folder(Path(source), minor, eks_arch)
    raise ReleaseLookupError(f"{source!r} is neither an http(s) or s3:// URL nor an absolute folder")
