"""The whole site: the roles in their order.

The controller (ollama_fleet.deploy) then runs the checks package against the hosts that changed, in its own process, and fails the deploy if a
check fails (checks use asyncio; pyinfra's process is patched by gevent, so they stay apart).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ollama_fleet.deploys.caddy import caddy
from ollama_fleet.deploys.firewall import firewall
from ollama_fleet.deploys.gpu import gpu
from ollama_fleet.deploys.models import models
from ollama_fleet.deploys.ollama import ollama
from ollama_fleet.deploys.services import services
from ollama_fleet.hostvars import ROLES

DEPLOYS: dict[str, Callable[..., Any]] = {
    "gpu": gpu,
    "ollama": ollama,
    "models": models,
    "caddy": caddy,
    "firewall": firewall,
    "services": services,
}
assert tuple(DEPLOYS) == ROLES


def site(roles: Sequence[str] = ROLES) -> None:
    """Run the chosen roles on the current host, always in the site's order.

    One call per line on purpose: pyinfra tells operations apart by the line numbers of the
    calls that led to them, so a loop over the roles would make different roles' operations
    look alike.
    """
    if "gpu" in roles:
        gpu()
    if "ollama" in roles:
        ollama()
    if "models" in roles:
        models()
    if "caddy" in roles:
        caddy()
    if "firewall" in roles:
        firewall()
    if "services" in roles:
        services()
