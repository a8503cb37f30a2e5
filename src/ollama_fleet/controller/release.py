"""The Ollama release a host installs, decided on the controller: pushed or downloaded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ollama_fleet import hostvars
from ollama_fleet.errors import ConfigError, FleetError

SIMULATOR = "simulator"


# -- what the controller prepares for the hosts ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """The Ollama release a host gets: pushed from the controller, or downloaded by the host."""

    source: str  # "artifact" or "download"
    version: str
    sha256: str
    filename: str
    path: str = ""  # artifact: controller path
    url: str = ""  # download: release URL
    simulator: bool = False
    # download: {dpkg architecture: {filename, sha256, url}}; the host picks its own
    arches: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "filename": self.filename,
            "path": self.path,
            "url": self.url,
            "arches": {arch: dict(files) for arch, files in self.arches.items()},
        }


# The release archives per host architecture (dpkg's names), as each release's sha256sum.txt
# lists them; a host of another architecture is refused by the ollama role.
ARCHIVES = {"amd64": "ollama-linux-amd64.tgz", "arm64": "ollama-linux-arm64.tgz"}
_ARCHIVE_NAME = re.compile(r"[A-Za-z0-9._+-]+\.(tgz|tar\.gz|tar\.zst)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_from_sums(text: str, filename: str) -> str | None:
    """The digest of `filename` in a sha256sum.txt ("HEX  ./name" or "HEX  name" lines)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].removeprefix("./").lstrip("*") == filename:
            return parts[0].lower()
    return None


def resolve_release(
    ollama_vars: Mapping[str, Any],
    *,
    where: str,
    inventory_dir: Path,
    cache_dir: Path,
    fetch: Callable[[str], str] | None = None,
    offline: bool = False,
) -> Release:
    """What the ollama role installs, decided on the controller (checksums included).

    `offline` (a dry run): an unpinned download's checksums are not fetched; the release
    carries an empty sha256 and the role plans the download as "checksum read on apply".
    """
    artifact = str(ollama_vars["ollama_artifact"])
    version = str(ollama_vars["ollama_version"])
    if artifact == SIMULATOR:
        from ollama_fleet.simulator.artifact import build_artifact

        built = build_artifact(cache_dir / "artifacts")
        return Release(
            source="artifact",
            version=built.version,
            sha256=built.sha256,
            filename=built.path.name,
            path=str(built.path),
            simulator=True,
        )
    if artifact:
        path = hostvars.controller_path(artifact, inventory_dir / "x")
        if not path.is_file():
            raise ConfigError(f"{where}: ollama_artifact: no such file {str(path)!r}")
        sha = file_sha256(path)
        pinned = str(ollama_vars["ollama_sha256"])
        if pinned and pinned != sha:
            raise ConfigError(
                f"{where}: ollama_artifact {path.name} has sha256 {sha[:12]}..., "
                f"not ollama_sha256 {pinned[:12]}..."
            )
        if not _ARCHIVE_NAME.fullmatch(path.name):
            raise ConfigError(
                f"{where}: ollama_artifact: {path.name!r}: the file name may hold only letters, "
                "digits and . _ + - and must end in .tgz, .tar.gz or .tar.zst"
            )
        return Release(
            source="artifact", version=version, sha256=sha, filename=path.name, path=str(path)
        )
    base = f"{str(ollama_vars['ollama_download_base']).rstrip('/')}/v{version}"
    pinned = str(ollama_vars["ollama_sha256"])
    if pinned:
        # one pinned digest: the archive of the host's architecture must match it on the host
        by_arch = {arch: pinned for arch in ARCHIVES}
    elif offline:
        by_arch = {arch: "" for arch in ARCHIVES}
    else:
        sums_url = f"{base}/sha256sum.txt"
        try:
            text = (fetch or _fetch)(sums_url)
        except httpx.HTTPError as exc:
            raise FleetError(f"{where}: cannot read {sums_url}: {exc}") from None
        by_arch = {}
        for arch, filename in ARCHIVES.items():
            found = sha256_from_sums(text, filename)
            if found is not None:
                by_arch[arch] = found
        if not by_arch:
            raise FleetError(f"{where}: {sums_url} lists none of {', '.join(ARCHIVES.values())}")
    first = next(iter(by_arch))
    return Release(
        source="download",
        version=version,
        sha256=by_arch[first],
        filename=ARCHIVES[first],
        url=f"{base}/{ARCHIVES[first]}",
        arches={
            arch: {"filename": ARCHIVES[arch], "sha256": sha, "url": f"{base}/{ARCHIVES[arch]}"}
            for arch, sha in by_arch.items()
        },
    )


def _fetch(url: str) -> str:
    answer = httpx.get(url, follow_redirects=True, timeout=30.0)
    answer.raise_for_status()
    return answer.text
