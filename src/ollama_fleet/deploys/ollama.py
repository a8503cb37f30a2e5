"""Role ollama: a pinned, checksummed release as a systemd service, restarted only on change.

Role ollama: a pinned release checked by sha256 (downloaded, or pushed from the controller for
offline hosts), the `ollama` system user, the systemd unit and a drop-in with the inventory's
environment; installed and restarted only when something changed, then waited for.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebArch
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import (
    CACHE_DIR,
    DeployError,
    has_nvidia_gpu,
    ollama_url,
    prepared,
    role_vars,
)
from ollama_fleet.deploys.converge import DirWant, Want
from ollama_fleet.deploys.facts import Marker, PathModes
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults
from ollama_fleet.render import render_ollama_dropin, render_ollama_unit

RELEASE_MARKER = "/opt/ollama/RELEASE"
HOME = "/usr/share/ollama"
UNIT = "/etc/systemd/system/ollama.service"
DROPIN_DIR = "/etc/systemd/system/ollama.service.d"


def install_script(
    archive: str,
    sha256: str,
    release_dir: str,
    marker: str,
    line: str,
    link: str = "/usr/local/bin/ollama",
) -> str:
    """Verify the archive, unpack it into its own directory, switch the symlinks, record it."""
    q = shlex.quote
    unpack = "tar --zstd -xf" if archive.endswith(".zst") else "tar -xzf"
    return " && ".join(
        [
            "set -e",
            f"echo {q(sha256 + '  ' + archive)} | sha256sum -c --quiet -",
            f"rm -rf {q(release_dir)}.new && mkdir -p {q(release_dir)}.new",
            f"{unpack} {q(archive)} -C {q(release_dir)}.new",
            f"test -x {q(release_dir)}.new/bin/ollama",
            f"rm -rf {q(release_dir)} && mv {q(release_dir)}.new {q(release_dir)}",
            f"ln -sfn {q(release_dir)}/bin/ollama {q(link)}",
            f"echo {q(line)} > {q(marker)}",
            f"rm -f {q(archive)}",
        ]
    )


def wait_script(url: str, timeout_s: int) -> str:
    version = shlex.quote(f"{url}/api/version")
    return (
        f"for i in $(seq {int(timeout_s)}); do curl -fsS --max-time 2 {version} >/dev/null "
        "&& exit 0; sleep 1; done; "
        "echo 'Ollama did not answer in time; last log lines:' >&2; "
        "journalctl -u ollama -n 20 --no-pager >&2; exit 1"
    )


def untraversable(modes: list[tuple[str, str]], models_dir: str) -> list[str]:
    """Existing parents of the models directory the ollama user cannot pass through."""
    return [path for mode, path in modes if path != models_dir and not int(mode[-1]) & 1]


DROPIN = f"{DROPIN_DIR}/ollama-fleet.conf"
# root-only: ollama_extra_env may hold a secret (an HTTPS_PROXY password, a token)
DROPIN_MODE = "600"
NVIDIA_MODPROBE = "/usr/bin/nvidia-modprobe"  # Debian's and NVIDIA's nvidia-modprobe package
PACKAGES = ["ca-certificates", "curl", "tar", "gzip"]


def unit() -> str:
    models_dir = str(role_vars("ollama")["ollama_models_dir"])
    modprobe = NVIDIA_MODPROBE if has_nvidia_gpu() else None
    return render_ollama_unit(models_dir=models_dir, nvidia_modprobe=modprobe)


def host_archive(release: dict[str, Any], arch: str) -> dict[str, Any] | None:
    """The release as a host of dpkg architecture `arch` installs it, or None when it has no
    archive for `arch` (an artifact is pushed as it is, whatever the architecture)."""
    if release["source"] != "download":
        return release
    found = release.get("arches", {}).get(arch)
    return {**release, **found} if found else None


def archive_for(release: dict[str, Any], arch: str) -> dict[str, Any]:
    """host_archive, or a refusal of the host naming the architectures the release has."""
    found = host_archive(release, arch)
    if found is None:
        known = ", ".join(sorted(release.get("arches", {}))) or "none"
        raise DeployError(
            f"{host.name}: ollama: no Ollama release archive for this host's architecture "
            f"{arch or 'unknown'} (this release has: {known})"
        )
    return found


def release_line(release: dict[str, Any]) -> str:
    return f"{release['version']} sha256:{release['sha256']}"


def host_release() -> dict[str, Any]:
    """The prepared release as this host installs it (its architecture's archive)."""
    release = prepared("ollama")
    found = host_archive(release, host.get_fact(DebArch)) if release else None
    # none: the role itself refuses the host (no release, or none for its architecture)
    return found or {"version": "", "sha256": ""}


def want() -> Want:
    v = role_vars("ollama")
    models_dir = str(v["ollama_models_dir"])
    result = Want(
        packages=set(PACKAGES),
        services={"ollama.service"},
        users={"ollama": {"ollama", "render", "video"}},
        dirs={
            models_dir: DirWant(mode="755", user="ollama", group="ollama"),
            DROPIN_DIR: DirWant(mode="755"),
        },
        lines={RELEASE_MARKER: release_line(host_release())},
    )
    result.file(UNIT, unit())
    result.file(DROPIN, render_ollama_dropin(v), mode=DROPIN_MODE)
    return result


@deploy("ollama", data_defaults=defaults("ollama"))
def ollama() -> None:
    v = role_vars("ollama")
    release = prepared("ollama")
    if not release:
        raise DeployError(f"{host.name}: ollama: the controller prepared no release")
    release = archive_for(release, host.get_fact(DebArch))
    models_dir = str(v["ollama_models_dir"])
    blocked = untraversable(host.get_fact(PathModes, path=models_dir), models_dir)
    if blocked:
        raise DeployError(
            f"{host.name}: ollama_models_dir: {blocked[0]} cannot be entered by the ollama user "
            "(its mode has no o+x); `chmod o+x` it or choose another path"
        )
    apt.packages(
        name="ollama: curl and tar",
        packages=PACKAGES,
        cache_time=3600,
        update=True,
    )
    server.group(name="ollama: render group", group="render", system=True)
    server.group(name="ollama: video group", group="video", system=True)
    server.group(name="ollama: ollama group", group="ollama", system=True)
    server.user(
        name="ollama: system user",
        user="ollama",
        system=True,
        home=HOME,
        shell="/bin/false",
        group="ollama",
        groups=["render", "video"],
        create_home=True,
    )
    files.directory(
        name="ollama: models directory",
        path=models_dir,
        user="ollama",
        group="ollama",
        mode="755",
    )
    changes = []
    line = release_line(release)
    installed = host.get_fact(Marker, path=RELEASE_MARKER) or ""
    # a dry run without network: no sha256 yet; the version decides, the apply checks it
    pending = not release["sha256"]
    if installed != line and not (pending and installed.startswith(line)):
        archive = posixpath.join(CACHE_DIR, release["filename"])
        files.directory(name="ollama: download cache", path=CACHE_DIR, mode="700")
        if release["source"] == "artifact":
            files.put(
                name=f"ollama: push {release['filename']} from the controller",
                src=release["path"],
                dest=archive,
                mode="600",
            )
        else:
            files.download(
                name=f"ollama: download {release['filename']}"
                + (" (sha256 fetched from sha256sum.txt on apply)" if pending else ""),
                src=release["url"],
                dest=archive,
                sha256sum=release["sha256"],
            )
        release_dir = f"/opt/ollama/{release['version']}"
        changes.append(
            server.shell(
                name=f"ollama: install {release['version']} (sha256 checked)",
                commands=[
                    install_script(archive, release["sha256"], release_dir, RELEASE_MARKER, line)
                ],
            )
        )
    changes.append(
        checked_file(
            name="ollama: systemd unit",
            content=unit(),
            dest=UNIT,
        )
    )
    files.directory(name="ollama: drop-in directory", path=DROPIN_DIR, mode="755")
    changes.append(
        checked_file(
            name="ollama: environment drop-in",
            content=render_ollama_dropin(v),
            dest=DROPIN,
            mode=DROPIN_MODE,
            secret=True,  # ollama_extra_env may carry a vault value
        )
    )
    changed = any_changed(*changes)
    systemd.daemon_reload(name="ollama: reload systemd", _if=changed)
    systemd.service(
        name="ollama: enabled and running", service="ollama.service", running=True, enabled=True
    )
    systemd.service(
        name="ollama: restart for the change",
        service="ollama.service",
        restarted=True,
        _if=changed,
    )
    server.shell(
        name="ollama: wait until it answers",
        commands=[wait_script(ollama_url(), int(v["ollama_wait_timeout"]))],
        _if=changed,
    )
