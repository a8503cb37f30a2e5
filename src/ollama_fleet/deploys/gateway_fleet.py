"""The gateways across an inventory: gateway_nodes resolved to URLs, and whom each node lets in.

Pure, and run on the controller before the plan (it needs every host, not only the chosen
ones): a host or group name in a gateway's `gateway_nodes` becomes `{name, url, max_parallel}`
for that node's Ollama, and each node fronted by a gateway on another host gets that
gateway's address in its `firewall_allow_ollama`. No pyinfra here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from difflib import get_close_matches
from typing import Any

from ollama_fleet.errors import ConfigError
from ollama_fleet.hostvars import BY_NAME, enabled, has_basic_auth
from ollama_fleet.inventory import Host, Inventory
from ollama_fleet.render import dial_address, gateway_node_name

__all__ = ["gateway_problems", "node_url", "resolve_gateways"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _get(host: Host, name: str) -> Any:
    value = host.vars.get(name)
    return BY_NAME[name].default if value is None else value


def address_of(host: Host) -> str:
    """Where other hosts of the fleet reach `host`: gateway_node_address, else ssh_hostname,
    else its inventory name."""
    return str(_get(host, "gateway_node_address") or _get(host, "ssh_hostname") or host.name)


def node_url(host: Host, *, local: bool) -> str:
    """The URL of `host`'s Ollama as a gateway sees it (`local`: the gateway runs there)."""
    _, _, port = dial_address(str(_get(host, "ollama_host"))).rpartition(":")
    if local:
        return f"http://127.0.0.1:{port}"
    address = address_of(host)
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"  # an IPv6 address in a URL
    return f"http://{address}:{port}"


def _where(gateway: Host) -> str:
    origin = gateway.origins.get("gateway_nodes")
    return f"{origin}: gateway_nodes" if origin is not None else f"{gateway.name}: gateway_nodes"


def _members(inventory: Inventory, name: str) -> list[Host] | None:
    """The hosts `name` stands for (a host, or a group's hosts in their order); None: neither."""
    for host in inventory.hosts:
        if host.name == name:
            return [host]
    if name in inventory.groups:
        return [host for host in inventory.hosts if name in host.groups]
    return None


def _resolve(inventory: Inventory, gateway: Host, problems: list[str]) -> list[Any]:
    """The gateway's nodes as mappings; each name that names nothing is a problem."""
    nodes: dict[str, Any] = {}
    for entry in _get(gateway, "gateway_nodes"):
        if isinstance(entry, dict):
            nodes.setdefault(str(entry["name"]), dict(entry))
            continue
        members = _members(inventory, str(entry))
        if members is None:
            known = [h.name for h in inventory.hosts] + list(inventory.groups)
            near = get_close_matches(str(entry), known, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            problems.append(f"{_where(gateway)}: no host or group named {entry!r}{hint}")
            continue
        for node in members:
            problem = _node_problem(gateway, node)
            if problem:
                problems.append(f"{_where(gateway)}: {problem}")
                continue
            nodes.setdefault(
                node.name,
                {
                    "name": node.name,
                    "url": node_url(node, local=node.name == gateway.name),
                    "max_parallel": int(_get(node, "ollama_num_parallel")) or 1,
                },
            )
    _same_names(gateway, list(nodes), problems)
    return list(nodes.values())


def _same_names(gateway: Host, names: list[str], problems: list[str]) -> None:
    """Two nodes that gateway.yml would name alike: the gateway refuses such a config."""
    seen: dict[str, str] = {}
    for name in names:
        clean = gateway_node_name(name)
        if clean in seen:
            problems.append(
                f"{_where(gateway)}: {seen[clean]!r} and {name!r} are both node {clean!r} in "
                f"{gateway.name}'s gateway.yml; rename one, or give one as {{name, url}}"
            )
            continue
        seen[clean] = name


def _node_problem(gateway: Host, node: Host) -> str | None:
    if _get(node, "ollama_enabled") is False:
        return f"{node.name!r} runs no Ollama (ollama_enabled: false)"
    if node.name == gateway.name:
        return None
    listen = str(_get(node, "ollama_host")).removeprefix("http://").rpartition(":")[0]
    if listen in LOOPBACK_HOSTS or listen.startswith("127."):
        return (
            f"{node.name!r} has Ollama on loopback only (ollama_host "
            f"{_get(node, 'ollama_host')}); set ollama_host: 0.0.0.0:11434 there, so that "
            f"{gateway.name} can reach it (its firewall lets only the gateway in)"
        )
    return None


def _front_door_problem(gateway: Host, node: Host) -> str | None:
    """A node behind another host's gateway must not serve Ollama through its own Caddy
    without a key: that would be a way around the gateway's keys and limits."""
    if _get(node, "gateway_enabled") is True or not enabled(node.vars, "caddy"):
        return None
    protected = has_basic_auth(_get(node, "caddy_extra_directives"))
    if protected and node.vars.get("public_access") == "closed":
        return None  # protected, and its checks prove a request without a key is refused
    return (
        f"{node.name!r} is behind {gateway.name}'s gateway but serves Ollama without a key "
        "through its own Caddy; set caddy_enabled: false on it (the gateway is its front "
        "door) or protect it (basic_auth in caddy_extra_directives, and public_access: closed)"
    )


def _family_problem(gateway: Host, node: Host, cidr: str) -> str | None:
    """The gateway dials the node from an address of its own family: an IPv6 node dialed by a
    gateway known by its IPv4 address comes from an address the node's firewall keeps out."""
    try:
        dialed = ipaddress.ip_address(address_of(node).strip("[]"))
    except ValueError:
        return None  # a name: resolved on the gateway, its family unknown here
    source = ipaddress.ip_network(cidr)
    if dialed.version == source.version:
        return None
    return (
        f"{gateway.name} dials {node.name} at IPv{dialed.version} {dialed} from its "
        f"IPv{source.version} address {source.network_address}, which is all {node.name}'s "
        "firewall lets in; give gateway_node_address of one family on both hosts"
    )


def _source_cidr(gateway: Host) -> str | None:
    """The gateway's address as a network the nodes' firewalls let in; None: not an IP."""
    try:
        address = ipaddress.ip_address(address_of(gateway).strip("[]"))
    except ValueError:
        return None
    return f"{address}/{address.max_prefixlen}"


def gateway_problems(inventory: Inventory) -> list[str]:
    """Every problem of the gateways' gateway_nodes, `FILE:LINE: gateway_nodes: text` each."""
    problems: list[str] = []
    _plan(inventory, problems)
    return problems


def _plan(
    inventory: Inventory, problems: list[str]
) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
    """({gateway: its nodes}, {node: the gateways' networks it lets in})."""
    nodes_of: dict[str, list[Any]] = {}
    sources: dict[str, list[str]] = {}
    for gateway in inventory.hosts:
        if _get(gateway, "gateway_enabled") is not True or not _get(gateway, "gateway_nodes"):
            continue
        nodes = _resolve(inventory, gateway, problems)
        nodes_of[gateway.name] = nodes
        remote = [
            node
            for node in inventory.hosts
            if node.name != gateway.name and any(n["name"] == node.name for n in nodes)
        ]
        for node in remote:
            problem = _front_door_problem(gateway, node)
            if problem:
                problems.append(f"{_where(gateway)}: {problem}")
        if not remote:
            continue
        cidr = _source_cidr(gateway)
        firewalled = [node.name for node in remote if _get(node, "firewall_enabled") is not False]
        if cidr is None and firewalled:
            problems.append(
                f"{_where(gateway)}: {gateway.name}'s address {address_of(gateway)!r} is not "
                f"an IP address, so the firewall of {', '.join(firewalled)} cannot let it in; "
                f"set gateway_node_address on {gateway.name} to its IP address"
            )
            continue
        for node in remote:
            if node.name in firewalled and cidr is not None:
                problem = _family_problem(gateway, node, cidr)
                if problem:
                    problems.append(f"{_where(gateway)}: {problem}")
        for name in firewalled:
            sources.setdefault(name, []).append(str(cidr))
    return nodes_of, sources


def resolve_gateways(inventory: Inventory) -> Inventory:
    """`inventory` with each gateway's gateway_nodes as {name, url, max_parallel} mappings and
    each fronted node's firewall_allow_ollama holding its gateways' addresses.

    ConfigError with every problem (a name that names no host or group, a node without Ollama
    or with Ollama on loopback, a gateway address that is no IP), one line each.
    """
    problems: list[str] = []
    nodes_of, sources = _plan(inventory, problems)
    if problems:
        raise ConfigError("\n".join(problems))
    hosts = []
    for host in inventory.hosts:
        values: dict[str, Any] = dict(host.vars)
        if host.name in nodes_of:
            values["gateway_nodes"] = nodes_of[host.name]
        if host.name in sources:
            allowed = [*_get(host, "firewall_allow_ollama"), *sources[host.name]]
            values["firewall_allow_ollama"] = list(dict.fromkeys(allowed))
        hosts.append(replace(host, vars=values))
    return replace(inventory, hosts=tuple(hosts))
