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

from ollama_fleet.lab.image import LabImage, build_image, default_cache_dir, find_image
from ollama_fleet.lab.inventory import write_lab_inventory
from ollama_fleet.lab.recipe import DEFAULT_MIRROR, DEFAULT_RECIPE, ImageRecipe, recipe_hash
from ollama_fleet.lab.ssh import run_ssh, ssh_command
from ollama_fleet.lab.state import GUEST_PORTS, LabInfo, default_state_dir, load_info
from ollama_fleet.lab.status import LabStatus, render_status, status
from ollama_fleet.lab.tools import Progress
from ollama_fleet.lab.vm import LabOptions, down, reboot, up, wait_for_ssh

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
