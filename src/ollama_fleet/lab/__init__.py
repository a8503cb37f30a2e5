"""The lab: a local Debian 12 VM with systemd that deploys and end-to-end tests target.

    image = build_image(progress=print)          # once per recipe; cached, needs root
    info = up(state_dir, LabOptions(), progress=print)
    run_ssh(info, "systemctl is-system-running --wait")
    reboot(info)
    down(state_dir)                              # keeps the overlay; destroy=True drops it

The VM is reached only through qemu's forwards on 127.0.0.1 (LabInfo's ports).
See docs/lab.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ollama_fleet.lazy import module_getattr

if TYPE_CHECKING:
    from ollama_fleet.lab.health import LabStatus, render_status, status
    from ollama_fleet.lab.image import LabImage, build_image, default_cache_dir, find_image
    from ollama_fleet.lab.inventory import write_lab_inventory
    from ollama_fleet.lab.recipe import DEFAULT_MIRROR, DEFAULT_RECIPE, ImageRecipe, recipe_hash
    from ollama_fleet.lab.ssh import run_ssh, ssh_command
    from ollama_fleet.lab.state import GUEST_PORTS, LabInfo, default_state_dir, load_info
    from ollama_fleet.lab.tools import Progress
    from ollama_fleet.lab.vm import LabOptions, down, reboot, up, wait_for_ssh

# imported on first use: `ollama-fleet --help` and the lab's constants stay cheap
_WHERE = {
    "LabImage": "ollama_fleet.lab.image",
    "build_image": "ollama_fleet.lab.image",
    "default_cache_dir": "ollama_fleet.lab.image",
    "find_image": "ollama_fleet.lab.image",
    "write_lab_inventory": "ollama_fleet.lab.inventory",
    "DEFAULT_MIRROR": "ollama_fleet.lab.recipe",
    "DEFAULT_RECIPE": "ollama_fleet.lab.recipe",
    "ImageRecipe": "ollama_fleet.lab.recipe",
    "recipe_hash": "ollama_fleet.lab.recipe",
    "run_ssh": "ollama_fleet.lab.ssh",
    "ssh_command": "ollama_fleet.lab.ssh",
    "GUEST_PORTS": "ollama_fleet.lab.state",
    "LabInfo": "ollama_fleet.lab.state",
    "default_state_dir": "ollama_fleet.lab.state",
    "load_info": "ollama_fleet.lab.state",
    "LabStatus": "ollama_fleet.lab.health",
    "render_status": "ollama_fleet.lab.health",
    "status": "ollama_fleet.lab.health",
    "Progress": "ollama_fleet.lab.tools",
    "LabOptions": "ollama_fleet.lab.vm",
    "down": "ollama_fleet.lab.vm",
    "reboot": "ollama_fleet.lab.vm",
    "up": "ollama_fleet.lab.vm",
    "wait_for_ssh": "ollama_fleet.lab.vm",
}


__all__ = [
    "DEFAULT_MIRROR",
    "DEFAULT_RECIPE",
    "GUEST_PORTS",
    "ImageRecipe",
    "LabImage",
    "LabInfo",
    "LabOptions",
    "LabStatus",
    "Progress",
    "build_image",
    "default_cache_dir",
    "default_state_dir",
    "down",
    "find_image",
    "load_info",
    "reboot",
    "recipe_hash",
    "render_status",
    "run_ssh",
    "ssh_command",
    "status",
    "up",
    "wait_for_ssh",
    "write_lab_inventory",
]

__getattr__ = module_getattr(__name__, _WHERE)
