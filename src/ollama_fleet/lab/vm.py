"""The lab VM's life: up (build or reuse the image, boot, wait for SSH), down, reboot."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ollama_fleet.errors import ConfigError, TestbedError
from ollama_fleet.lab.defaults import ACCELS, BOOT_TIMEOUT_S, POWEROFF_TIMEOUT_S
from ollama_fleet.lab.files import exclusive_lock
from ollama_fleet.lab.image import LabImage, build_image, check_mirror, load_image
from ollama_fleet.lab.inventory import write_lab_inventory
from ollama_fleet.lab.ports import DEFAULT_PORTS, choose_ports
from ollama_fleet.lab.qemu import (
    PortsTaken,
    check_accel,
    create_overlay,
    qemu_command,
    qemu_running,
    start_qemu,
    stop_qemu,
    wait_for_exit,
)
from ollama_fleet.lab.recipe import DEFAULT_MIRROR, recipe_hash
from ollama_fleet.lab.ssh import ensure_key_pair, run_ssh
from ollama_fleet.lab.state import (
    KEY_FILE,
    KNOWN_HOSTS_FILE,
    OVERLAY_FILE,
    LabInfo,
    default_state_dir,
    load_info,
    save_info,
)
from ollama_fleet.lab.tools import Progress, last_line, no_progress, require_tool, timed_step
from ollama_fleet.values import parse_port

DEFAULT_ACCEL = "tcg"
DEFAULT_MEMORY_MB = 2048
DEFAULT_CPUS = 2
START_ATTEMPTS = 3  # picked ports can be taken before qemu binds them
_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabOptions:
    """How `up` starts a lab. A None setting means: as last time, else the default."""

    accel: str | None = None
    memory_mb: int | None = None
    cpus: int | None = None
    ssh_port: int | None = None
    http_port: int | None = None
    https_port: int | None = None
    ollama_port: int | None = None
    monitor_port: int | None = None
    boot_timeout_s: float = BOOT_TIMEOUT_S
    mirror: str = DEFAULT_MIRROR
    fresh: bool = False

    def __post_init__(self) -> None:
        if self.accel is not None and self.accel not in ACCELS:
            raise ConfigError(f"--accel {self.accel}: choose one of {', '.join(ACCELS)}")
        if self.memory_mb is not None and self.memory_mb < 512:
            raise ConfigError(f"--memory {self.memory_mb}: the lab needs at least 512 MB")
        if self.cpus is not None and self.cpus < 1:
            raise ConfigError(f"--cpus {self.cpus}: at least 1")
        for name, port in self.requested_ports.items():
            if port is not None:
                parse_port(port, where=f"--{name}-port {port}")
        if self.boot_timeout_s <= 0:
            raise ConfigError(f"--timeout {self.boot_timeout_s}: must be positive")
        check_mirror(self.mirror)

    @property
    def requested_ports(self) -> dict[str, int | None]:
        return {
            "ssh": self.ssh_port,
            "http": self.http_port,
            "https": self.https_port,
            "ollama": self.ollama_port,
            "monitor": self.monitor_port,
        }


def up(
    state_dir: Path | None = None,
    options: LabOptions = LabOptions(),
    *,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
) -> LabInfo:
    """Start the lab in `state_dir` and wait until SSH answers; a running lab is left as is.

    The first start builds the image (needs root, minutes) unless it is cached; later
    starts boot the same overlay, so what a deploy did survives `down` and `up`.
    `options.fresh` discards the overlay first.
    """
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"):
        require_tool(tool)
    state_dir = (state_dir or default_state_dir()).absolute()
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{state_dir}: cannot create the lab's directory: {exc.strerror}"
        ) from None
    with exclusive_lock(state_dir / ".lock"):
        previous = load_info(state_dir)
        if previous is not None and qemu_running(previous):
            if not options.fresh:
                _check_unchanged(previous, options)
                progress(f"lab already running in {state_dir} (qemu pid {previous.pid})")
                wait_for_ssh(previous, timeout_s=options.boot_timeout_s)
                write_lab_inventory(previous)
                return previous
            progress("lab: stopping it to start over (--fresh)")
            stop_qemu(previous)
        overlay = state_dir / OVERLAY_FILE
        if options.fresh or previous is None or not overlay.exists():
            image = build_image(cache_dir, mirror=options.mirror, progress=progress)
            create_overlay(image, overlay)
            (state_dir / KNOWN_HOSTS_FILE).unlink(missing_ok=True)  # new overlay, new host key
        else:
            image = _image_of(previous)
            if image.recipe_hash != recipe_hash():
                progress(
                    "lab: note: its overlay is on an older image; --fresh moves to the current"
                )
        public_key = ensure_key_pair(state_dir / KEY_FILE)
        info = _boot(state_dir, image, options, previous, public_key, progress)
        write_lab_inventory(info)
        return info


def down(
    state_dir: Path | None = None,
    *,
    destroy: bool = False,
    timeout_s: float = POWEROFF_TIMEOUT_S,
    progress: Progress = no_progress,
) -> LabInfo | None:
    """Power the lab off (cleanly, else SIGTERM, then SIGKILL); keep its overlay unless `destroy`.

    Returns the stopped lab, or None if there was none.
    """
    state_dir = (state_dir or default_state_dir()).absolute()
    if not state_dir.is_dir():
        progress(f"no lab in {state_dir}")
        return None
    with exclusive_lock(state_dir / ".lock"):
        info = load_info(state_dir)
        if info is None:
            progress(f"no lab in {state_dir}")
            return None
        if qemu_running(info):
            with timed_step(progress, f"lab: powering off (qemu pid {info.pid})"):
                run_ssh(info, "systemctl poweroff", check=False, timeout_s=15, connect_timeout_s=5)
                if not wait_for_exit(info, timeout_s=timeout_s):
                    progress(f"lab: no clean power-off within {timeout_s:.0f} s; stopping qemu")
                    stop_qemu(info)
        info = replace(info, pid=None)
        if destroy:
            _remove_lab_files(info)
            progress(f"lab: removed its overlay, key and state from {state_dir}")
        else:
            save_info(info)
        return info


def reboot(info: LabInfo, *, timeout_s: float = BOOT_TIMEOUT_S) -> str:
    """Reboot the guest and wait until it answers again (qemu resets, same forwards).

    Returns the new boot id; TestbedError if it does not come back within `timeout_s`.
    """
    old_boot = run_ssh(info, _BOOT_ID).stdout.strip()
    run_ssh(info, "systemctl reboot", check=False, timeout_s=30)
    return wait_for_ssh(info, timeout_s=timeout_s, previous_boot_id=old_boot)


def wait_for_ssh(
    info: LabInfo, *, timeout_s: float = BOOT_TIMEOUT_S, previous_boot_id: str | None = None
) -> str:
    """Wait until root can log in by SSH (into a boot other than `previous_boot_id`).

    Returns the boot id. TestbedError pointing at the serial console log if qemu exits
    or SSH does not answer within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    error = ""
    while True:
        if not qemu_running(info):
            raise TestbedError(
                f"qemu exited while the lab was booting; see the serial console log "
                f"{info.serial_log} (last line: {serial_tail(info)})"
            )
        result = run_ssh(info, _BOOT_ID, check=False, timeout_s=30, connect_timeout_s=5)
        boot_id = result.stdout.strip()
        if result.returncode == 0 and boot_id and boot_id != previous_boot_id:
            return boot_id
        error = last_line(result.stderr) or error
        if time.monotonic() > deadline:
            raise TestbedError(
                f"the lab did not answer SSH on 127.0.0.1:{info.ssh_port} within "
                f"{timeout_s:.0f} s (last ssh error: {error or 'none'}); see the serial "
                f"console log {info.serial_log} (last line: {serial_tail(info)})"
            )
        time.sleep(1.0)


def serial_tail(info: LabInfo) -> str:
    """The last line of the serial console log, without terminal escapes."""
    try:
        text = info.serial_log.read_bytes()[-4096:].decode("utf-8", errors="replace")
    except OSError:
        return "no log"
    return last_line(_ANSI.sub("", text).replace("\r", "\n")) or "empty"


def _boot(
    state_dir: Path,
    image: LabImage,
    options: LabOptions,
    previous: LabInfo | None,
    public_key: str,
    progress: Progress,
) -> LabInfo:
    accel = options.accel or (previous.accel if previous else DEFAULT_ACCEL)
    check_accel(accel)
    remembered = previous.ports if previous else None
    if remembered is None and state_dir == default_state_dir().absolute():
        remembered = dict(DEFAULT_PORTS)  # what inventories/lab.yml expects, when free
    for attempt in range(1, START_ATTEMPTS + 1):
        ports = choose_ports(options.requested_ports, remembered)
        info = LabInfo(
            state_dir=state_dir,
            ssh_port=ports["ssh"],
            http_port=ports["http"],
            https_port=ports["https"],
            ollama_port=ports["ollama"],
            monitor_port=ports["monitor"],
            image_dir=image.directory,
            image_hash=image.recipe_hash,
            accel=accel,
            memory_mb=options.memory_mb or (previous.memory_mb if previous else DEFAULT_MEMORY_MB),
            cpus=options.cpus or (previous.cpus if previous else DEFAULT_CPUS),
        )
        try:
            pid = start_qemu(qemu_command(info, image, public_key=public_key), info)
        except PortsTaken:
            if attempt == START_ATTEMPTS or None not in options.requested_ports.values():
                raise
            remembered = None  # those are the ports taken meanwhile: pick all afresh
            continue
        info = replace(info, pid=pid)
        break
    save_info(info)  # before waiting: `down` must find a lab whose boot fails
    what = f"lab: booting ({accel}, {info.memory_mb} MB, {info.cpus} CPUs), waiting for SSH"
    try:
        with timed_step(progress, what):
            wait_for_ssh(info, timeout_s=options.boot_timeout_s)
    except TestbedError:
        stop_qemu(info)
        save_info(replace(info, pid=None))
        raise
    return info


def _image_of(previous: LabInfo) -> LabImage:
    image = load_image(previous.image_dir)
    if image is None:
        raise TestbedError(
            f"{previous.image_dir}: this lab's base image is gone; "
            "`ollama-fleet lab up --fresh` starts over from a new one"
        )
    return image


def _check_unchanged(running: LabInfo, options: LabOptions) -> None:
    """ConfigError if `options` ask a running lab for settings it does not have."""
    wanted: dict[str, object] = {f"{k}-port": v for k, v in options.requested_ports.items()}
    wanted |= {"accel": options.accel, "memory": options.memory_mb, "cpus": options.cpus}
    actual: dict[str, object] = {f"{k}-port": v for k, v in running.ports.items()}
    actual |= {"accel": running.accel, "memory": running.memory_mb, "cpus": running.cpus}
    for name, value in wanted.items():
        if value is not None and value != actual.get(name):
            raise ConfigError(
                f"--{name} {value}: the lab is running with {actual.get(name, 'none')}; "
                "`ollama-fleet lab down` first to change it"
            )


def _remove_lab_files(info: LabInfo) -> None:
    for path in (
        info.overlay,
        info.known_hosts,
        info.ssh_key,
        info.ssh_public_key,
        info.inventory,
        info.serial_log,
        info.serial_log.with_name("serial.log.1"),
        info.pidfile,
        info.state_file,
    ):
        path.unlink(missing_ok=True)
