"""Role caddy: the package, certificate files, and a Caddyfile validated before it goes live.

Role caddy: the package (Debian's, or Caddy's own apt repository), certificate files when
given, and the Caddyfile: validated with `caddy validate` on the host before it replaces the live
one and Caddy reloads, so a broken config never replaces a working one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys import services
from ollama_fleet.deploys.common import local_address, prepared, role_vars, var
from ollama_fleet.deploys.converge import DirWant, Want
from ollama_fleet.deploys.facts import OsRelease
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults
from ollama_fleet.render import CADDY_ADMIN_SOCKET, render_caddyfile

CADDY_KEY = "https://dl.cloudsmith.io/public/caddy/stable/gpg.key"
CADDY_REPO = "https://dl.cloudsmith.io/public/caddy/stable/deb/debian"
CADDY_KEYRING = "/etc/apt/keyrings/caddy-stable.gpg"
TLS_DIR = "/etc/caddy/tls"
CERT_FILE, KEY_FILE = f"{TLS_DIR}/cert.pem", f"{TLS_DIR}/key.pem"
CADDYFILE = "/etc/caddy/Caddyfile"
VALIDATE = "runuser -u caddy -- caddy validate --adapter caddyfile --config {path}"
DROPIN_DIR = "/etc/systemd/system/caddy.service.d"
DROPIN = f"{DROPIN_DIR}/ollama-fleet.conf"
# /run/caddy for the admin socket: made by systemd for the caddy user, closed to others.
DROPIN_TEXT = (
    "# Managed by ollama-fleet (the caddy role): the directory of Caddy's admin socket.\n"
    "[Service]\nRuntimeDirectory=caddy\nRuntimeDirectoryMode=0750\n"
)
# A running Caddy with its admin API elsewhere (TCP 2019 before this role, or not running):
# `caddy reload` would look for the new file's socket and fail, so it is restarted once.
ACTIVATE = (
    f"if [ -S {CADDY_ADMIN_SOCKET} ] && systemctl is-active --quiet caddy; "
    "then systemctl reload caddy; else systemctl restart caddy; fi"
)


def source(configured: str, os_release: dict[str, str]) -> str:
    """caddy_source, with `auto` resolved: the distribution's package where it has one."""
    if configured != "auto":
        return configured
    key = (os_release.get("ID"), os_release.get("VERSION_ID"))
    return "caddy-repo" if key == ("ubuntu", "22.04") else "debian"


def site_names(configured: list[str], public_url: str | None, fallback: str) -> list[str]:
    """caddy_site_names, else the host name of public_url, else the inventory name."""
    if configured:
        return list(configured)
    if public_url:
        name = urlsplit(public_url).hostname
        if name:
            return [f"[{name}]" if ":" in name else name]  # Caddy writes IPv6 in brackets
    return [fallback]


def upstream() -> tuple[str, bool]:
    """(address, is Ollama): the gateway when it is enabled, else Ollama itself."""
    if var("gateway_enabled"):
        return f"127.0.0.1:{var('gateway_port')}", False
    address, port = local_address(str(var("ollama_host")))
    return f"{address}:{port}", True


def caddyfile(v: dict[str, Any]) -> str:
    address, is_ollama = upstream()
    names = site_names(v["caddy_site_names"], host.data.get("public_url"), host.name)
    files_mode = v["caddy_tls"] == "files"
    return render_caddyfile(
        v,
        site_names=names,
        upstream=address,
        upstream_is_ollama=is_ollama,
        cert_file=CERT_FILE if files_mode else None,
        key_file=KEY_FILE if files_mode else None,
        # Debian's and Ubuntu's caddy is 2.6.2; Caddy's own repository has 2.7 and later
        legacy_buffering=source(v["caddy_source"], host.get_fact(OsRelease)) == "debian",
    )


def want() -> Want | None:
    """What this role leaves on the host; None: always run it (Caddy's own repository)."""
    v = role_vars("caddy")
    if source(v["caddy_source"], host.get_fact(OsRelease)) != "debian":
        return None
    result = Want(packages={"caddy"}, services={"caddy"})
    result.file(DROPIN, DROPIN_TEXT)
    if v["caddy_tls"] == "files":
        result.dirs[TLS_DIR] = DirWant(mode="750", group="caddy")
        result.file(CERT_FILE, prepared("caddy_cert"), mode="644", group="caddy")
        result.file(KEY_FILE, prepared("caddy_key"), mode="640", group="caddy")
    if not gateway_missing():
        result.file(CADDYFILE, caddyfile(v))
    return result


def gateway_missing() -> bool:
    """gateway_enabled, but the services role will refuse to install it here (python3, the
    architecture): Caddy keeps the site it serves rather than a gateway that never comes."""
    return bool(var("gateway_enabled")) and services.refusal() is not None


@deploy("caddy", data_defaults=defaults("caddy"))
def caddy() -> None:
    v = role_vars("caddy")
    if source(v["caddy_source"], host.get_fact(OsRelease)) == "caddy-repo":
        # apt.key dearmors with gpg, which a minimal Debian 12 lacks
        apt.packages(
            name="caddy: gnupg for the repository key",
            packages=["gnupg"],
            update=True,
            cache_time=3600,
        )
        key = apt.key(name="caddy: repository key", src=CADDY_KEY, dest=CADDY_KEYRING)
        repository = apt.sources_file(
            name="caddy: Caddy's apt repository",
            filename="caddy-stable",
            uris=CADDY_REPO,
            suites="any-version",
            components="main",
            signed_by=CADDY_KEYRING,
        )
        # a new source is read now, whatever apt's cache age: else the package is not found
        apt.update(
            name="caddy: apt-get update for the new source", _if=any_changed(key, repository)
        )
    apt.packages(name="caddy: package", packages=["caddy"], update=True, cache_time=3600)
    files.directory(name="caddy: unit drop-in directory", path=DROPIN_DIR, mode="755")
    dropin = checked_file(
        name="caddy: admin socket directory (unit drop-in)", content=DROPIN_TEXT, dest=DROPIN
    )
    systemd.daemon_reload(name="caddy: reload systemd for the drop-in", _if=any_changed(dropin))
    tls_changes = []
    if v["caddy_tls"] == "files":
        files.directory(name="caddy: tls directory", path=TLS_DIR, group="caddy", mode="750")
        tls_changes = [
            checked_file(
                name="caddy: certificate",
                content=prepared("caddy_cert"),
                dest=CERT_FILE,
                group="caddy",
                mode="644",
            ),
            checked_file(
                name="caddy: private key",
                content=prepared("caddy_key"),
                dest=KEY_FILE,
                group="caddy",
                mode="640",
                secret=True,
            ),
        ]
    if gateway_missing():
        # not Ollama without keys instead: the services role fails this host, saying why
        host.noop("caddy: Caddyfile left as it is (the services role cannot install the gateway)")
        config = None
    else:
        config = checked_file(
            name="caddy: Caddyfile (validated on the host first)",
            content=caddyfile(v),
            dest=CADDYFILE,
            validate=VALIDATE,
            activate=ACTIVATE,
        )
    systemd.service(name="caddy: enabled and running", service="caddy", running=True, enabled=True)
    if tls_changes:
        systemd.service(
            name="caddy: reload for new certificates",
            service="caddy",
            reloaded=True,
            _if=lambda: any_changed(*tls_changes)() and not (config and config.did_change()),
        )
