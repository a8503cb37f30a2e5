"""Role services: this project, its configs and hardened units, installed on the host.

Role services: this project installed on the host (a wheel built on the controller, pushed,
into a venv under /opt), its configs rendered from the inventory, and hardened systemd units:
the self-check timer where Ollama runs, with monitor_enabled the monitor, restarted when its
config, its unit or the installed wheel changed, and with gateway_enabled the gateway
(deploys/gateway.py); each stopped and removed when turned off.
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
    has_nvidia_gpu,
    ollama_url,
    prepared,
    role_enabled,
    role_vars,
    var,
)
from ollama_fleet.deploys.converge import DirWant, Want
from ollama_fleet.deploys.facts import Marker, OsRelease, PythonVersion
from ollama_fleet.deploys.gateway import (
    GATEWAY_UNIT,
    GATEWAY_UNIT_FILE,
    check_nodes,
    config_check,
    remove_gateway,
    run_gateway,
)
from ollama_fleet.deploys.operations import checked_file, remove_unit, wait_script
from ollama_fleet.hostvars import defaults, self_check_key
from ollama_fleet.render import (
    dial_address,
    monitor_listen,
    render_fleet_check_service,
    render_fleet_check_timer,
    render_gateway_config,
    render_gateway_service,
    render_monitor_config,
    render_monitor_service,
)

USER = "ollama-fleet"
BUNDLE_ARCHES = ("amd64",)  # the controller's bundle holds x86_64 wheels (deploy.HOST_PLATFORMS)
CONFIG_DIR = "/etc/ollama-fleet"
UNIT_DIR = "/etc/systemd/system"
CHECKS_CONFIG = f"{CONFIG_DIR}/checks.yml"
MONITOR_CONFIG = f"{CONFIG_DIR}/monitor.yml"
GATEWAY_CONFIG = f"{CONFIG_DIR}/gateway.yml"
MONITOR_UNIT = "ollama-fleet-monitor.service"
MONITOR_UNIT_FILE = f"{UNIT_DIR}/{MONITOR_UNIT}"
MONITOR_WAIT_S = 60  # a first start on a slow host imports the whole package


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


def self_check_inventory(
    url: str, required_models: list[object], *, api_key: str | None = None
) -> str:
    """The inventory the host's check timer (and the monitor) uses: Ollama itself on loopback,
    or with `api_key` the gateway on loopback (a secret: the file is mode 0640).

    Ollama has no keys and, on loopback, answers its write endpoints by design: the self-check
    declares it open and leaves the write endpoints to the checks from outside. The gateway
    refuses a request without a key and every write endpoint, as from outside.
    """
    target: dict[str, Any] = {"public_url": url, "required_models": required_models}
    target["closed_ports"] = []
    if api_key is None:
        target |= {"public_access": "open", "check_write_endpoints": False}
        what = "Ollama"
    else:
        target["api_key"] = api_key
        what = "the gateway (a key inside: mode 0640)"
    document = {"all": {"hosts": {"self": target}}}
    return f"# Managed by ollama-fleet: the host's own check of {what}.\n" + yaml.safe_dump(
        document, sort_keys=True
    )


def self_check(v: dict[str, Any]) -> str:
    """checks.yml for this host: through its gateway where it runs one, else Ollama itself."""
    models = list(var("required_models"))
    if not v["gateway_enabled"]:
        return self_check_inventory(ollama_url(), models)
    key = self_check_key(var("api_key"), v["gateway_api_keys"])  # hostvars made sure of one
    return self_check_inventory(f"http://127.0.0.1:{v['gateway_port']}", models, api_key=key)


def configs(v: dict[str, Any], *, gpu: bool) -> list[tuple[str, str, str]]:
    """(operation name, path, content) of the files readable by the service user (mode 0640).

    `gpu`: the monitor reads this host's GPUs (has_nvidia_gpu).
    """
    return [
        ("services: self-check inventory", CHECKS_CONFIG, self_check(v)),
        (
            "services: gateway config (API keys hashed)",
            GATEWAY_CONFIG,
            render_gateway_config(
                v,
                ollama_host=str(var("ollama_host")),
                num_parallel=int(var("ollama_num_parallel")) or 1,
                local_name=host.name,
            ),
        ),
        (
            "services: monitor config",
            MONITOR_CONFIG,
            render_monitor_config(v, gpu=gpu),
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


def refusal() -> str | None:
    """Why this project cannot be installed on the current host (its python3 runs no wheel of
    the bundle, or its architecture has none), from its facts; None: it can."""
    bundle = prepared("bundle") or {}
    requires = str(bundle.get("requires_python", ""))
    problem = python_problem(host.get_fact(PythonVersion), requires)
    arch = host.get_fact(DebArch)
    if not problem and arch in BUNDLE_ARCHES:
        return None
    if problem:
        os_name = host.get_fact(OsRelease).get("PRETTY_NAME", "this OS")
        return f"{problem} ({os_name}), but ollama-fleet needs Python {requires}"
    return f"the bundle has wheels for {', '.join(BUNDLE_ARCHES)} only, not {arch}"


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


def packages(v: dict[str, Any]) -> list[str]:
    """What the role installs: the venv module, and curl where the deploy waits for the
    gateway's /health or the monitor's /metrics with it (a minimal host may lack it)."""
    waits = v["gateway_enabled"] or v["monitor_enabled"]
    return ["python3-venv", "curl"] if waits else ["python3-venv"]


def marker_line(bundle: dict[str, Any]) -> str:
    return f"{bundle['wheel']} sha256:{bundle['sha256']}"


def want() -> Want | None:
    """Converged: the venv at the bundle's release, configs, the check timer where Ollama runs,
    and with monitor_enabled the monitor's unit, enabled and running. A monitor turned off
    changes monitor.yml's first line, so a unit left from before is drift too (the gateway's
    likewise: gateway.yml's first line)."""
    v = role_vars("services")
    if not v["services_enabled"]:
        return Want()
    bundle = prepared("bundle")
    if not bundle:
        return None  # the role itself says what is wrong
    gpu = has_nvidia_gpu()
    wanted_services = {"ollama-fleet-check.timer"} if units(v) else set()
    if v["monitor_enabled"]:
        wanted_services.add(MONITOR_UNIT)
    if v["gateway_enabled"]:
        wanted_services.add(GATEWAY_UNIT)
    result = Want(
        packages=set(packages(v)),
        users={USER: {USER}},
        services=wanted_services,
        dirs={CONFIG_DIR: DirWant(mode="750", group=USER)},
        lines={f"{v['fleet_venv']}/.ollama-fleet-bundle": marker_line(bundle)},
    )
    for _, path, content in configs(v, gpu=gpu):
        result.file(path, content, mode="640", group=USER)
    for _, path, content in units(v):
        result.file(path, content)
    if v["monitor_enabled"]:
        result.file(MONITOR_UNIT_FILE, render_monitor_service(v, gpu=gpu))
    if v["gateway_enabled"]:
        result.file(GATEWAY_UNIT_FILE, render_gateway_service(v))
    return result


def monitor_wait_script(v: dict[str, Any], *, timeout_s: int = MONITOR_WAIT_S) -> str:
    """Wait until the monitor's /metrics answers locally; else fail showing its journal."""
    url = f"http://{dial_address(monitor_listen(v))}/metrics"
    return wait_script(url, unit=MONITOR_UNIT, what="the monitor", timeout_s=timeout_s)


def remove_monitor() -> None:
    """monitor_enabled is false: stop, disable and remove a monitor unit installed before."""
    remove_unit(
        unit=MONITOR_UNIT,
        unit_file=MONITOR_UNIT_FILE,
        what="monitor",
        because="monitor_enabled: false",
    )


@deploy("services", data_defaults=defaults("services"))
def services() -> None:
    v = role_vars("services")
    if not v["services_enabled"]:
        return
    if v["gateway_enabled"]:
        check_nodes(v)
    bundle = prepared("bundle")
    if not bundle:
        raise DeployError(f"{host.name}: services: the controller prepared no bundle")
    why = refusal()
    if why:
        # refused as a failing operation, not in planning: the other roles still apply
        message = f"{host.name}: services: REFUSED: {why}; or set services_enabled: false"
        server.shell(
            name="services: REFUSED (see the message)",
            commands=[f"echo {shlex.quote(message)} >&2; exit 1"],
        )
        return
    venv = str(v["fleet_venv"])
    gpu = has_nvidia_gpu()
    apt.packages(
        name=f"services: {', '.join(packages(v))}",
        packages=packages(v),
        update=True,
        cache_time=3600,
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
    installed = []
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
        installed.append(
            server.shell(
                name=f"services: install {bundle['wheel']} into {venv}",
                commands=[install_script(venv, pushed, bundle, marker, line)],
            )
        )
    checks = {GATEWAY_CONFIG: config_check(venv)} if v["gateway_enabled"] else {}
    written = {
        path: checked_file(
            name=name,
            content=content,
            dest=path,
            validate=checks.get(path),
            group=USER,
            mode="640",
            secret=True,
        )
        for name, path, content in configs(v, gpu=gpu)
    }
    unit_changes = [
        checked_file(name=name, content=content, dest=path) for name, path, content in units(v)
    ]
    monitor_unit = []
    if v["monitor_enabled"]:
        monitor_unit.append(
            checked_file(
                name=f"services: {MONITOR_UNIT}",
                content=render_monitor_service(v, gpu=gpu),
                dest=MONITOR_UNIT_FILE,
            )
        )
    else:
        remove_monitor()
    gateway_unit = []
    if v["gateway_enabled"]:
        gateway_unit.append(
            checked_file(
                name=f"services: {GATEWAY_UNIT}",
                content=render_gateway_service(v),
                dest=GATEWAY_UNIT_FILE,
            )
        )
    else:
        remove_gateway()
    if unit_changes or monitor_unit or gateway_unit:
        systemd.daemon_reload(
            name="services: reload systemd",
            _if=any_changed(*unit_changes, *monitor_unit, *gateway_unit),
        )
    if gateway_unit:
        # before the timer and the monitor: their self-check goes through it
        run_gateway(v, unit=gateway_unit[0], config=written[GATEWAY_CONFIG], installed=installed)
    if unit_changes:
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
            _if=any_changed(*unit_changes, *installed, *written.values()),
        )
    if monitor_unit:
        systemd.service(
            name="services: monitor enabled and running",
            service=MONITOR_UNIT,
            running=True,
            enabled=True,
        )
        # what it runs, reads or watches changed: a restart (a reload would keep a wheel's
        # old code, and a config it refuses)
        changed = any_changed(
            *monitor_unit, *installed, written[MONITOR_CONFIG], written[CHECKS_CONFIG]
        )
        systemd.service(
            name="services: restart the monitor for the change",
            service=MONITOR_UNIT,
            restarted=True,
            _if=changed,
        )
        # systemd calls a service started once it runs: one that then dies would only
        # restart in a loop, so the deploy waits until it answers
        server.shell(
            name="services: the monitor answers on /metrics",
            commands=[monitor_wait_script(v)],
            _if=changed,
        )
