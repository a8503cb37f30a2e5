"""Role firewall: an nftables ruleset, checked, applied atomically, never cutting SSH.

Role firewall: an nftables ruleset (inbound drop; established, loopback and SSH first; 80 and
443; optional allow-lists) checked with `nft -c -f` and applied atomically by `nft -f`, enabled
for boot. It refuses to run when sshd listens on a port the ruleset would not allow.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from ollama_fleet.deploys.common import DeployError, local_address, role_vars, var
from ollama_fleet.deploys.converge import Want
from ollama_fleet.deploys.facts import SshdPorts
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults
from ollama_fleet.render import render_nftables


def unsafe_ssh(live_ports: list[int], sshd_port: int) -> str | None:
    """Why the ruleset would cut SSH, or None. Unknown live ports (empty) are trusted."""
    if live_ports and sshd_port not in live_ports:
        ports = ", ".join(map(str, live_ports))
        return f"sshd listens on {ports} but sshd_port is {sshd_port}"
    return None


RULESET = "/etc/nftables.conf"


def ruleset(v: dict[str, Any]) -> str:
    _, ollama_port = local_address(str(var("ollama_host")))
    return render_nftables(v, ollama_port=ollama_port)


def want() -> Want | None:
    v = role_vars("firewall")
    if not v["firewall_enabled"]:
        return Want()
    result = Want(packages={"nftables"}, services={"nftables.service"})
    result.file(RULESET, ruleset(v), mode="755")
    return result


@deploy("firewall", data_defaults=defaults("firewall"))
def firewall() -> None:
    v = role_vars("firewall")
    if not v["firewall_enabled"]:
        return
    problem = unsafe_ssh(host.get_fact(SshdPorts), int(v["sshd_port"]))
    if problem:
        raise DeployError(
            f"{host.name}: firewall: {problem}; the ruleset would cut SSH, so it is not applied "
            "(set sshd_port to the port sshd really uses)"
        )
    apt.packages(name="firewall: nftables", packages=["nftables"], update=True, cache_time=3600)
    checked_file(
        name="firewall: ruleset (checked by nft -c, applied atomically)",
        content=ruleset(v),
        dest=RULESET,
        mode="755",
        validate="nft -c -f {path}",
        activate="nft -f /etc/nftables.conf",
    )
    systemd.service(
        name="firewall: loaded at boot", service="nftables.service", running=True, enabled=True
    )
