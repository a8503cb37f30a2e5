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
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import DeployError

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
    q = shlex.quote
    failed = f"the gateway does not answer on {url} after {timeout_s} s; its journal:"
    return (
        f"for i in $(seq {timeout_s}); do curl -fs -o /dev/null --max-time 2 {q(url)} && exit 0; "
        f"sleep 1; done; echo {q(failed)} >&2; "
        f"journalctl -u {GATEWAY_UNIT} -n 15 --no-pager -o cat >&2; exit 1"
    )


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
    if not host.get_fact(File, path=GATEWAY_UNIT_FILE):
        return
    systemd.service(
        name="services: gateway stopped and disabled (gateway_enabled: false)",
        service=GATEWAY_UNIT,
        running=False,
        enabled=False,
    )
    files.file(name=f"services: {GATEWAY_UNIT} removed", path=GATEWAY_UNIT_FILE, present=False)
    systemd.daemon_reload(name="services: reload systemd (gateway unit removed)")
