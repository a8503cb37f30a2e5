"""The whole site: the roles in their order.

The controller (ollama_fleet.controller) then runs the checks package against the hosts that
changed, in its own process, and fails the deploy if a check fails (checks use asyncio;
pyinfra's process is patched by gevent, so they stay apart).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pyinfra import host, logger

from ollama_fleet.deploys import caddy as caddy_role
from ollama_fleet.deploys import firewall as firewall_role
from ollama_fleet.deploys import models as models_role
from ollama_fleet.deploys import ollama as ollama_role
from ollama_fleet.deploys import services as services_role
from ollama_fleet.deploys.caddy import caddy
from ollama_fleet.deploys.common import role_enabled
from ollama_fleet.deploys.converge import Snapshot, Want, drift, merged
from ollama_fleet.deploys.firewall import firewall
from ollama_fleet.deploys.gpu import gpu
from ollama_fleet.deploys.models import models
from ollama_fleet.deploys.ollama import ollama
from ollama_fleet.deploys.services import services
from ollama_fleet.hostvars import ROLES

WANTS: dict[str, Callable[[], Want | None]] = {
    "ollama": ollama_role.want,
    "models": models_role.want,
    "caddy": caddy_role.want,
    "firewall": firewall_role.want,
    "services": services_role.want,
}
DEPLOYS: dict[str, Callable[..., Any]] = {
    "gpu": gpu,
    "ollama": ollama,
    "models": models,
    "caddy": caddy,
    "firewall": firewall,
    "services": services,
}
assert tuple(DEPLOYS) == ROLES


def site(roles: Sequence[str] = ROLES, *, snapshot: bool = True) -> None:
    """Run the chosen roles on the current host, always in the site's order.

    First one snapshot of the host (converge.py) tells which roles have converged; those do
    nothing more. The others run their operations. One call per line on purpose: pyinfra tells
    operations apart by the line numbers of the calls that led to them, so a loop over the
    roles would make different roles' operations look alike.
    """
    wants = {
        role: WANTS[role]() for role in roles if role in WANTS and snapshot and role_enabled(role)
    }
    known = [want for want in wants.values() if want is not None]
    state = host.get_fact(Snapshot, **merged(known)) if known else None

    def needed(role: str) -> bool:
        if role not in roles:
            return False
        if not role_enabled(role):
            logger.info(
                f"[{host.name}] {role}: not on this host ({role}_enabled is false, or "
                "what it fronts does not run here)"
            )
            return False
        want = wants.get(role)
        if want is None or state is None:
            return True
        differences = drift(want, state)
        if differences:
            logger.info(f"[{host.name}] {role}: to converge: {', '.join(differences[:4])}")
            return True
        logger.info(f"[{host.name}] {role}: converged, nothing to do")
        return False

    if needed("gpu"):
        gpu()
    if needed("ollama"):
        ollama()
    if needed("models"):
        models()
    if needed("caddy"):
        caddy()
    if needed("firewall"):
        firewall()
    if needed("services"):
        services()
