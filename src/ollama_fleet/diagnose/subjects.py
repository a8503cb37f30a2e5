"""Who is diagnosed: inventory hosts (outside and inside) and --url targets (outside only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ollama_fleet import hostvars
from ollama_fleet.checks.model import Target
from ollama_fleet.diagnose.case import Expect
from ollama_fleet.inventory import Host, Inventory
from ollama_fleet.values import parse_port


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    name: str
    target: Target | None  # the outside checks' target (None: no public_url)
    expect: Expect | None  # None for a --url target
    host: Host | None = None  # the inventory host, read over SSH; None: outside only

    @property
    def public_name(self) -> str | None:
        return urlsplit(self.target.url).hostname if self.target is not None else None


def expect_for(host: Host, *, inventory: str, deploy_args: Sequence[str] = ()) -> Expect:
    """What the inventory says of `host`, from its variables and the roles' defaults."""
    values = host.vars
    services = hostvars.enabled(values, "services")
    ollama = hostvars.resolved(values, "ollama")
    port = parse_port(str(ollama["ollama_host"]).rsplit(":", 1)[-1], where="ollama_host")
    return Expect(
        inventory=inventory,
        ollama=hostvars.enabled(values, "ollama"),
        caddy=hostvars.enabled(values, "caddy"),
        firewall=hostvars.enabled(values, "firewall"),
        gateway=services and bool(values.get("gateway_enabled", False)),
        monitor=services and bool(values.get("monitor_enabled", False)),
        gpu=hostvars.enabled(values, "gpu"),
        required_models=tuple(_model_names(values.get("required_models") or ())),
        ollama_port=port,
        open_on_purpose=tuple(
            int(p)
            for p in [
                hostvars.resolved(values, "firewall")["sshd_port"],
                *(hostvars.resolved(values, "firewall")["firewall_extra_tcp_ports"] or ()),
            ]
        ),
        deploy_args=tuple(deploy_args),
    )


def _model_names(items: Sequence[object]) -> list[str]:
    return [str(i["name"]) if isinstance(i, dict) else str(i) for i in items]


def inventory_subjects(
    inventory: Inventory,
    hosts: Sequence[Host],
    targets: Sequence[Target],
    *,
    shown_path: str,
    deploy_args: Sequence[str] = (),
) -> list[Subject]:
    by_name = {t.name: t for t in targets}
    return [
        Subject(
            name=host.name,
            target=by_name.get(host.name),
            expect=expect_for(host, inventory=shown_path, deploy_args=deploy_args),
            host=host,
        )
        for host in hosts
    ]


def url_subjects(targets: Sequence[Target]) -> list[Subject]:
    return [Subject(name=t.name, target=t, expect=None) for t in targets]
