"""Role firewall: one nftables table of our own, checked, applied atomically, never cutting SSH.

Role firewall: table inet ollama_fleet (inbound drop; established, loopback, ICMP, DHCP replies
and SSH first; 80 and 443; optional allow-lists, where the monitor's port joins the metrics
ports) in a file of its own, checked with `nft -c -f`, applied atomically by `nft -f` and
loaded at boot by ollama-fleet-firewall.service. Every other table (Docker's, libvirt's,
fail2ban's) is left alone. It refuses to run when sshd listens on a port the ruleset would not
allow.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindInFile
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import DeployError, local_address, role_vars, var
from ollama_fleet.deploys.converge import DirWant, Want
from ollama_fleet.deploys.facts import SshdPorts
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults
from ollama_fleet.render import render_firewall_unit, render_nftables


def unsafe_ssh(live_ports: list[int], sshd_port: int) -> str | None:
    """Why the ruleset would cut SSH, or None. Unknown live ports (empty) are trusted."""
    if live_ports and sshd_port not in live_ports:
        ports = ", ".join(map(str, live_ports))
        return f"sshd listens on {ports} but sshd_port is {sshd_port}"
    return None


RULESET_DIR = "/etc/nftables.d"
RULESET = f"{RULESET_DIR}/ollama-fleet.nft"
UNIT = "ollama-fleet-firewall.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
# Before this role kept to its own table it wrote /etc/nftables.conf (`flush ruleset`, then
# table inet filter), which nftables.service loads at boot: hosts deployed then get Debian's
# file back and lose that table, once our own table is in place.
DEBIAN_CONF = "/etc/nftables.conf"
OLD_MARKER = "Managed by ollama-fleet (the firewall role)"
DEBIAN_CONF_TEXT = (
    "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n"
    "\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n"
    "\tchain forward {\n\t\ttype filter hook forward priority filter;\n\t}\n"
    "\tchain output {\n\t\ttype filter hook output priority filter;\n\t}\n}\n"
)


def ruleset(v: dict[str, Any]) -> str:
    _, ollama_port = local_address(str(var("ollama_host")))
    runs_monitor = var("services_enabled") and var("monitor_enabled")
    monitor_port = int(var("monitor_port")) if runs_monitor else None
    return render_nftables(v, ollama_port=ollama_port, monitor_port=monitor_port)


def want() -> Want | None:
    v = role_vars("firewall")
    if not v["firewall_enabled"]:
        return Want()
    result = Want(packages={"nftables"}, services={UNIT}, dirs={RULESET_DIR: DirWant(mode="755")})
    result.file(RULESET, ruleset(v))
    result.file(UNIT_FILE, render_firewall_unit(ruleset=RULESET))
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
    files.directory(
        name=f"firewall: {RULESET_DIR}", path=RULESET_DIR, user="root", group="root", mode="755"
    )
    unit = checked_file(
        name=f"firewall: {UNIT}", content=render_firewall_unit(ruleset=RULESET), dest=UNIT_FILE
    )
    systemd.daemon_reload(name="firewall: reload systemd", _if=any_changed(unit))
    checked_file(
        name="firewall: ruleset (checked by nft -c, applied atomically)",
        content=ruleset(v),
        dest=RULESET,
        validate="nft -c -f {path}",
        activate=f"nft -f {RULESET}",
    )
    systemd.service(name="firewall: loaded at boot", service=UNIT, running=True, enabled=True)
    if host.get_fact(FindInFile, path=DEBIAN_CONF, pattern=OLD_MARKER):
        checked_file(
            name=f"firewall: Debian's own {DEBIAN_CONF} back",
            content=DEBIAN_CONF_TEXT,
            dest=DEBIAN_CONF,
            mode="755",
        )
        server.shell(
            name="firewall: the old table inet filter removed",
            commands=["nft 'add table inet filter; delete table inet filter'"],
        )
        # the old role enabled it; its stop (`nft flush ruleset`, also run on every package
        # upgrade) would still wipe Docker's and libvirt's tables
        systemd.service(
            name="firewall: Debian's nftables.service no longer enabled",
            service="nftables.service",
            enabled=False,
        )
