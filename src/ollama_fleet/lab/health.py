"""Whether a lab runs and answers SSH, and how to reach it, as a record and as text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ollama_fleet.lab.ports import HOST
from ollama_fleet.lab.qemu import qemu_running
from ollama_fleet.lab.recipe import recipe_hash
from ollama_fleet.lab.ssh import run_ssh
from ollama_fleet.lab.state import GUEST_PORTS, LabInfo, default_state_dir, load_info
from ollama_fleet.lab.tools import last_line


@dataclass(frozen=True, slots=True, kw_only=True)
class LabStatus:
    """A lab as found now; `info` is None when no lab was ever started in `state_dir`."""

    state_dir: Path
    info: LabInfo | None
    running: bool
    ssh_ok: bool
    ssh_error: str = ""

    @property
    def ready(self) -> bool:
        return self.running and self.ssh_ok


def status(state_dir: Path | None = None, *, probe_ssh: bool = True) -> LabStatus:
    """Look at the lab in `state_dir`: is its qemu alive, does root get in by SSH?"""
    state_dir = (state_dir or default_state_dir()).absolute()
    info = load_info(state_dir)
    if info is None:
        return LabStatus(state_dir=state_dir, info=None, running=False, ssh_ok=False)
    running = qemu_running(info)
    if not (running and probe_ssh):
        return LabStatus(state_dir=state_dir, info=info, running=running, ssh_ok=False)
    result = run_ssh(info, "true", check=False, timeout_s=30, connect_timeout_s=5)
    return LabStatus(
        state_dir=state_dir,
        info=info,
        running=True,
        ssh_ok=result.returncode == 0,
        ssh_error=last_line(result.stderr),
    )


def render_status(lab: LabStatus) -> str:
    """A few lines for a person: state, forwards, files, how to get in."""
    if lab.info is None:
        return f"no lab in {lab.state_dir}: `ollama-fleet lab up` starts one\n"
    info = lab.info
    if lab.ready:
        state = f"running, SSH answers (qemu pid {info.pid})"
    elif lab.running:
        state = f"running, SSH does not answer ({lab.ssh_error or 'booting?'}; qemu pid {info.pid})"
    else:
        state = "stopped (`ollama-fleet lab up` starts it)"
    image = f"{info.image_dir}"
    if info.image_hash != recipe_hash():
        image += " (an older recipe: `lab up --fresh` moves to the current one)"
    lines = [
        f"lab: {state}",
        f"  vm:          {info.accel}, {info.memory_mb} MB, {info.cpus} CPUs",
    ]
    notes = {"ollama": "  (must stay closed)", "monitor": "  (the monitor, once deployed)"}
    for name, port in info.ports.items():
        note = notes.get(name, "")
        lines.append(f"  {name + ' port:':<12} {HOST}:{port} -> {GUEST_PORTS[name]}{note}")
    if info.status_page_url:
        lines.append(f"  status page: {info.status_page_url}")
    lines += [
        f"  state dir:   {info.state_dir}",
        f"  inventory:   {info.inventory}",
        f"  ssh:         ollama-fleet lab ssh --state-dir {info.state_dir}",
        f"  serial log:  {info.serial_log}",
        f"  image:       {image}",
    ]
    return "\n".join(lines) + "\n"
