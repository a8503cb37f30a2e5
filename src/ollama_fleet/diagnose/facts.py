"""What diagnose knows about one host from the inside: typed, frozen records of parsed facts.

Every field that could not be read is None (or empty), with the reason in `HostFacts.gaps`,
so a rule can tell "the firewall has no drop policy" from "nft is not installed".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """A systemd unit as `systemctl show` and its journal tell it."""

    name: str  # "ollama.service"
    load_state: str  # loaded, not-found, masked, bad-setting, error
    active_state: str  # active, inactive, failed, activating, deactivating, reloading
    sub_state: str = ""
    result: str = ""  # success, exit-code, signal, core-dump, timeout, ...
    restarts: int | None = None  # NRestarts
    since: dt.datetime | None = None  # ActiveEnterTimestamp (UTC), None when never active
    main_status: int | None = None  # ExecMainStatus
    fragment: str = ""  # the unit file
    drop_ins: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)  # Environment=, merged
    journal: tuple[str, ...] = ()  # the last lines, oldest first, "TIME PROCESS: MESSAGE"
    errors: tuple[str, ...] = ()  # the journal lines that read as errors, oldest first

    @property
    def installed(self) -> bool:
        return self.load_state not in ("not-found", "")

    @property
    def active(self) -> bool:
        return self.active_state in ("active", "reloading")


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A listening TCP socket (`ss -Hltnp`)."""

    address: str  # "0.0.0.0", "127.0.0.1", "::", "::1", "*"
    port: int
    process: str = ""  # "caddy", "python3"; "" when ss could not name it (not root)

    @property
    def loopback(self) -> bool:
        return self.address.startswith("127.") or self.address in ("::1", "localhost")


@dataclass(frozen=True, slots=True, kw_only=True)
class Firewall:
    """What `nft -j list ruleset` says about incoming TCP."""

    tables: tuple[str, ...]  # "inet ollama_fleet", "ip filter", ...
    ours: bool  # the table our firewall role owns is there
    input_drops: bool  # an input hook chain drops by default (policy drop or a final drop)
    # TCP ports an input chain accepts from any source; None when nothing filters input
    accepted_tcp: frozenset[int] | None

    def admits(self, port: int) -> bool:
        """Whether a new TCP connection to `port` from anywhere gets through."""
        return not self.input_drops or (self.accepted_tcp is not None and port in self.accepted_tcp)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    name: str
    size: int
    size_vram: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OllamaApi:
    """Ollama's API asked on the host's loopback (OLLAMA_HOST from its unit)."""

    url: str  # what was asked, e.g. "http://127.0.0.1:11434"
    answered: bool
    error: str | None = None  # curl's words when it did not answer
    version: str | None = None
    models: tuple[str, ...] = ()  # /api/tags names
    loaded: tuple[LoadedModel, ...] = ()  # /api/ps


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelsDir:
    path: str
    exists: bool
    owner: str | None = None
    group: str | None = None
    mode: str | None = None  # "755"
    total_bytes: int | None = None
    free_bytes: int | None = None  # available to unprivileged users
    total_inodes: int | None = None
    free_inodes: int | None = None
    mount: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    """One GPU as nvidia-smi's --query-gpu reports it (None: "[N/A]")."""

    index: int
    name: str
    driver: str
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    ecc_uncorrected: int | None = None
    temperature_c: int | None = None
    persistence: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuFacts:
    nvidia_devices: int  # NVIDIA display/3D controllers on the PCI bus (vendor 0x10de)
    smi_installed: bool
    smi_error: str | None = None  # nvidia-smi's own words when it failed
    gpus: tuple[Gpu, ...] = ()
    modules: frozenset[str] = frozenset()  # loaded: nvidia, nvidia_uvm, nouveau, ...
    kernel_module_version: str | None = None  # /proc/driver/nvidia/version
    module_for_kernel: bool | None = None  # an nvidia.ko exists for the running kernel

    @property
    def mismatch(self) -> bool:
        return self.smi_error is not None and "version mismatch" in self.smi_error.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A certificate in Caddy's storage."""

    path: str
    names: tuple[str, ...]
    not_after: dt.datetime  # UTC
    issuer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CaddyFacts:
    installed: bool
    config_valid: bool | None = None  # `caddy validate` on /etc/caddy/Caddyfile
    validate_error: str | None = None
    rewrites_host: bool | None = None  # every reverse_proxy of the Caddyfile sets `header_up Host`
    proxies_to: tuple[str, ...] = ()  # reverse_proxy upstreams in the Caddyfile
    unrewritten: tuple[str, ...] = ()  # upstreams whose reverse_proxy has no `header_up Host`
    certificates: tuple[Certificate, ...] = ()
    acme_errors: tuple[str, ...] = ()  # journal lines about failed certificate work


@dataclass(frozen=True, slots=True, kw_only=True)
class Clock:
    offset_s: float | None  # host minus controller, the SSH round trip allowed for
    ntp_synchronized: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dns:
    name: str
    from_host: tuple[str, ...] | None  # addresses; None when it could not be looked up there
    from_controller: tuple[str, ...] | None
    host_error: str | None = None
    controller_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostFacts:
    """Everything read on one host. `gaps` says, per fact, why it is missing."""

    os: str | None = None  # PRETTY_NAME
    kernel: str | None = None
    arch: str | None = None
    root: bool | None = None  # the SSH user (or its sudo) is root: journals and nft readable
    units: Mapping[str, Unit] = field(default_factory=dict)
    listeners: tuple[Listener, ...] | None = None
    firewall: Firewall | None = None
    ollama_release: str | None = None  # /opt/ollama/RELEASE's version, when we installed it
    ollama_api: OllamaApi | None = None
    models_dir: ModelsDir | None = None
    gpu: GpuFacts | None = None
    caddy: CaddyFacts | None = None
    clock: Clock | None = None
    dns: Dns | None = None
    missing_tools: tuple[str, ...] = ()  # programs a fact needed that the host lacks
    gaps: Mapping[str, str] = field(default_factory=dict)  # fact -> why it is missing

    def unit(self, name: str) -> Unit | None:
        return self.units.get(name)
