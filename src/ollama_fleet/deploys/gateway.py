"""The gateway's unit in the services role: installed, started, reloaded or restarted, removed.

The gateway (ollama-fleet-gateway.service) runs with gateway_enabled. It is restarted when its
unit or the installed wheel changed (new code), and only reloaded (SIGHUP: the config re-read,
the streams in flight kept) when nothing but gateway.yml changed. After either the deploy
waits until it answers GET /health on loopback. Its gateway.yml is checked by the gateway
itself before it goes live. Turned off, its unit is stopped and removed.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import DeployError
from ollama_fleet.deploys.operations import remove_unit, wait_script

GATEWAY_UNIT = "ollama-fleet-gateway.service"
GATEWAY_UNIT_FILE = f"/etc/systemd/system/{GATEWAY_UNIT}"
GATEWAY_WAIT_S = 60  # a first start on a slow host imports the whole package


def config_check(venv: str) -> str:
    """checked_file's `validate` for gateway.yml: the gateway's own --check-config on the staged
    copy, so a config the gateway would refuse never replaces the one it runs on."""
    return f"{shlex.quote(venv)}/bin/ollama-fleet gateway --config {{path}} --check-config"


def unresolved_nodes(nodes: Sequence[Any]) -> list[str]:
    """The gateway_nodes entries still host or group names (the controller resolves them)."""
    return [str(entry) for entry in nodes if not isinstance(entry, dict) or "url" not in entry]


def check_nodes(v: dict[str, Any]) -> None:
    """DeployError when gateway_nodes reached the host unresolved (a controller bug)."""
    names = unresolved_nodes(v["gateway_nodes"])
    if names:
        raise DeployError(
            f"{host.name}: gateway_nodes: {', '.join(names)} not resolved to URLs (the "
            "controller resolves host and group names: deploy with `ollama-fleet deploy`)"
        )


def gateway_wait_script(v: dict[str, Any], *, timeout_s: int = GATEWAY_WAIT_S) -> str:
    """Wait until the gateway's /health answers on loopback; else fail showing its journal."""
    url = f"http://127.0.0.1:{int(v['gateway_port'])}/health"
    return wait_script(url, unit=GATEWAY_UNIT, what="the gateway", timeout_s=timeout_s)


def run_gateway(
    v: dict[str, Any],
    *,
    unit: OperationMeta,
    config: OperationMeta,
    installed: Sequence[OperationMeta],
) -> None:
    """Enable and start the gateway; restart it for new code, reload it for a new config."""
    systemd.service(
        name="services: gateway enabled and running",
        service=GATEWAY_UNIT,
        running=True,
        enabled=True,
    )
    new_code = any_changed(unit, *installed)
    systemd.service(
        name="services: restart the gateway for the change",
        service=GATEWAY_UNIT,
        restarted=True,
        _if=new_code,
    )
    systemd.service(
        name="services: reload the gateway for its new config (streams go on)",
        service=GATEWAY_UNIT,
        reloaded=True,
        _if=lambda: config.did_change() and not new_code(),
    )
    server.shell(
        name="services: the gateway answers on /health",
        commands=[gateway_wait_script(v)],
        _if=any_changed(unit, config, *installed),
    )


def remove_gateway() -> None:
    """gateway_enabled is false: stop, disable and remove a gateway unit installed before."""
    remove_unit(
        unit=GATEWAY_UNIT,
        unit_file=GATEWAY_UNIT_FILE,
        what="gateway",
        because="gateway_enabled: false",
    )
