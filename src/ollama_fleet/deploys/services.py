"""Role services: this project, its configs and hardened units, installed on the host.

Role services: this project installed on the host (a wheel built on the controller, pushed,
into a venv under /opt), its configs rendered from the inventory, and hardened systemd units:
the self-check timer now; the monitor and gateway units once those services exist.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebArch
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import (
    CACHE_DIR,
    DeployError,
    ollama_url,
    prepared,
    role_enabled,
    role_vars,
    var,
)
from ollama_fleet.deploys.converge import DirWant, Want
from ollama_fleet.deploys.facts import Marker, OsRelease, PythonVersion
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults
from ollama_fleet.render import (
    render_fleet_check_service,
    render_fleet_check_timer,
    render_gateway_config,
    render_monitor_config,
)

USER = "ollama-fleet"
BUNDLE_ARCHES = ("amd64",)  # the controller's bundle holds x86_64 wheels (deploy.HOST_PLATFORMS)
CONFIG_DIR = "/etc/ollama-fleet"
UNIT_DIR = "/etc/systemd/system"


def install_script(venv: str, archive: str, bundle: dict[str, Any], marker: str, line: str) -> str:
    """Unpack the bundle and install from it with pip --no-index: no network needed."""
    q = shlex.quote
    folder = archive.removesuffix(".tar")
    pip = f"{q(venv)}/bin/pip install -q --disable-pip-version-check --no-index"
    return " && ".join(
        [
            "set -e",
            f"echo {q(bundle['sha256'] + '  ' + archive)} | sha256sum -c --quiet -",
            f"rm -rf {q(folder)} && mkdir -p {q(folder)} && tar -xf {q(archive)} -C {q(folder)}",
            f"test -x {q(venv)}/bin/python || python3 -m venv {q(venv)}",
            f"{pip} --find-links {q(folder)}/wheels -r {q(folder)}/requirements.txt",
            f"{pip} --no-deps --force-reinstall {q(folder)}/wheels/{q(bundle['wheel'])}",
            f"{q(venv)}/bin/ollama-fleet --version",
            f"echo {q(line)} > {q(marker)}",
            f"rm -rf {q(folder)}",
        ]
    )


def self_check_inventory(url: str, required_models: list[object]) -> str:
    """The inventory the host's check timer uses: Ollama itself, on loopback.

    Ollama has no keys and, on loopback, answers its write endpoints by design: the self-check
    declares it open and leaves the write endpoints to the checks from outside.
    """
    document = {
        "all": {
            "hosts": {
                "self": {
                    "public_url": url,
                    "required_models": required_models,
                    "closed_ports": [],
                    "public_access": "open",
                    "check_write_endpoints": False,
                }
            }
        }
    }
    return "# Managed by ollama-fleet: the host's own check of Ollama.\n" + yaml.safe_dump(
        document, sort_keys=True
    )


def configs(v: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(operation name, path, content) of the files readable by the service user (mode 0640)."""
    return [
        (
            "services: self-check inventory",
            f"{CONFIG_DIR}/checks.yml",
            self_check_inventory(ollama_url(), list(var("required_models"))),
        ),
        (
            "services: gateway config (API keys hashed)",
            f"{CONFIG_DIR}/gateway.yml",
            render_gateway_config(v, ollama_host=str(var("ollama_host"))),
        ),
        (
            "services: monitor config",
            f"{CONFIG_DIR}/monitor.yml",
            render_monitor_config(v, targets_url=ollama_url()),
        ),
    ]


def python_problem(version: str | None, requires: str) -> str | None:
    """Why the host's python3 cannot run the wheel, or None (unknown: apt installs it)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not version or not requires:
        return None
    try:
        allowed = SpecifierSet(requires)
    except InvalidSpecifier:
        return None
    return None if allowed.contains(f"{version}.0") else f"python3 is {version}"


def units(v: dict[str, Any]) -> list[tuple[str, str, str]]:
    if not role_enabled("ollama"):
        return []  # the self-check checks this host's Ollama: none here
    return [
        (
            "services: ollama-fleet-check.service",
            f"{UNIT_DIR}/ollama-fleet-check.service",
            render_fleet_check_service(v),
        ),
        (
            "services: ollama-fleet-check.timer",
            f"{UNIT_DIR}/ollama-fleet-check.timer",
            render_fleet_check_timer(v),
        ),
    ]


def marker_line(bundle: dict[str, Any]) -> str:
    return f"{bundle['wheel']} sha256:{bundle['sha256']}"


def want() -> Want | None:
    v = role_vars("services")
    if not v["services_enabled"]:
        return Want()
    bundle = prepared("bundle")
    if not bundle or v["monitor_enabled"] or v["gateway_enabled"]:
        return None  # the role itself says what is wrong
    result = Want(
        packages={"python3-venv"},
        users={USER: {USER}},
        services={"ollama-fleet-check.timer"} if units(v) else set(),
        dirs={CONFIG_DIR: DirWant(mode="750", group=USER)},
        lines={f"{v['fleet_venv']}/.ollama-fleet-bundle": marker_line(bundle)},
    )
    for _, path, content in configs(v):
        result.file(path, content, mode="640", group=USER)
    for _, path, content in units(v):
        result.file(path, content)
    return result


@deploy("services", data_defaults=defaults("services"))
def services() -> None:
    v = role_vars("services")
    if not v["services_enabled"]:
        return
    for name in ("monitor", "gateway"):
        if v[f"{name}_enabled"]:
            raise DeployError(
                f"{host.name}: {name}_enabled: the {name} service is not part of this release "
                "yet; its config keys are rendered, but it cannot run (keep it false)"
            )
    bundle = prepared("bundle")
    if not bundle:
        raise DeployError(f"{host.name}: services: the controller prepared no bundle")
    requires = str(bundle.get("requires_python", ""))
    problem = python_problem(host.get_fact(PythonVersion), requires)
    arch = host.get_fact(DebArch)
    if problem or arch not in BUNDLE_ARCHES:
        # refused as a failing operation, not in planning: the other roles still apply
        os_name = host.get_fact(OsRelease).get("PRETTY_NAME", "this OS")
        if problem:
            why = f"{problem} ({os_name}), but ollama-fleet needs Python {requires}"
        else:
            why = f"the bundle has wheels for {', '.join(BUNDLE_ARCHES)} only, not {arch}"
        message = f"{host.name}: services: REFUSED: {why}; or set services_enabled: false"
        server.shell(
            name="services: REFUSED (see the message)",
            commands=[f"echo {shlex.quote(message)} >&2; exit 1"],
        )
        return
    venv = str(v["fleet_venv"])
    apt.packages(
        name="services: python3-venv", packages=["python3-venv"], update=True, cache_time=3600
    )
    server.group(name="services: group", group=USER, system=True)
    server.user(
        name="services: system user",
        user=USER,
        group=USER,
        system=True,
        home="/var/lib/ollama-fleet",
        shell="/usr/sbin/nologin",
    )
    files.directory(name="services: config directory", path=CONFIG_DIR, group=USER, mode="750")
    marker = f"{venv}/.ollama-fleet-bundle"
    line = marker_line(bundle)
    changes = []
    if not bundle["sha256"]:
        # a dry run before the bundle was ever built: no file to compare or push yet
        server.shell(
            name=f"services: push {bundle['wheel']} and its wheels, install it into {venv} "
            "(the bundle is built on apply)",
            commands=["false"],  # a dry run never runs it; a real run never gets here
        )
    elif host.get_fact(Marker, path=marker) != line:
        files.directory(name="services: cache", path=CACHE_DIR, mode="700")
        pushed = f"{CACHE_DIR}/{bundle['filename']}"
        files.put(
            name=f"services: push {bundle['wheel']} and its wheels",
            src=bundle["path"],
            dest=pushed,
            mode="600",
        )
        changes.append(
            server.shell(
                name=f"services: install {bundle['wheel']} into {venv}",
                commands=[install_script(venv, pushed, bundle, marker, line)],
            )
        )
    for name, path, content in configs(v):
        changes.append(
            checked_file(name=name, content=content, dest=path, group=USER, mode="640", secret=True)
        )
    unit_changes = [
        checked_file(name=name, content=content, dest=path) for name, path, content in units(v)
    ]
    if not unit_changes:
        return
    systemd.daemon_reload(name="services: reload systemd", _if=any_changed(*unit_changes))
    systemd.service(
        name="services: check timer enabled",
        service="ollama-fleet-check.timer",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="services: restart the timer for the change",
        service="ollama-fleet-check.timer",
        restarted=True,
        _if=any_changed(*unit_changes, *changes),
    )
