"""A local fleet: simulated Ollama hosts behind one real Caddy, each site with its own cert.

Each site is one "host" of the fleet: https://localhost:PORT through Caddy to an Ollama API
simulator (a test double), with a certificate of a chosen kind (valid, expired, ...) and
optional simulator faults. `inventory()` describes the fleet in the inventory format, so
the checks see it exactly as they would see production hosts.
"""

from __future__ import annotations

import contextlib
import re
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from ollama_fleet.errors import TestbedError
from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.caddy import CaddyProcess, Site, render_caddyfile
from ollama_fleet.testbed.certs import CertFiles, CertificateAuthority
from ollama_fleet.testbed.servers import STARTUP_TIMEOUT_S, free_ports, serve_in_thread

BANNER_PORT = re.compile(r"listening on http://[^ ]*:(\d+)$")

# How each kind of certificate is issued: days from now for validity, and the names in it.
CERT_KINDS: Mapping[str, Mapping[str, Any]] = {
    "valid": {},
    "expired": {"not_before_days": -100, "not_after_days": -2},
    "not_yet_valid": {"not_before_days": 3, "not_after_days": 90},
    "wrong_name": {"names": ("wrong.example",)},
    "expiring": {"not_after_days": 5},
    "untrusted": {},  # issued by a second CA that nobody is told to trust
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteSpec:
    """One simulated host: its certificate kind, faults, models and proxy behaviour.

    `block_write_endpoints` (the default, as the deploy's Caddy) answers Ollama's write
    endpoints 403; False passes them to the simulator, as an exposed host would.
    """

    name: str
    cert: str = "valid"
    faults: Faults | None = None
    redirect: bool = True
    hsts: bool = True
    api_key: str | None = field(default=None, repr=False)
    block_write_endpoints: bool = True
    host_vars: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cert not in CERT_KINDS:
            raise ValueError(f"unknown cert kind {self.cert!r}; known: {sorted(CERT_KINDS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningSite:
    spec: SiteSpec
    https_port: int
    http_port: int | None
    simulator_port: int

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def http_url(self) -> str | None:
        return None if self.http_port is None else f"http://localhost:{self.http_port}/"


class LocalFleet:
    """Start with `with LocalFleet(workdir, specs) as fleet:`; everything stops on exit.

    Sites without faults share `shared_simulators` simulators (round robin), which get
    `shared_faults` if given (e.g. latency, to stand for distant hosts); a site with faults
    gets its own. `simulators_in_processes` runs them as `ollama-fleet simulator`
    subprocesses, so a benchmark's client does not share a GIL with its servers.
    """

    def __init__(
        self,
        workdir: Path,
        specs: Sequence[SiteSpec],
        *,
        simulator: SimulatorConfig | None = None,
        shared_simulators: int = 1,
        shared_faults: Faults | None = None,
        simulators_in_processes: bool = False,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("site names must be unique")
        self.workdir = workdir
        self.specs = tuple(specs)
        self.simulator = simulator or SimulatorConfig(tokens_per_second=0)
        self.shared_simulators = max(1, shared_simulators)
        self.shared_faults = shared_faults
        self.in_processes = simulators_in_processes
        self.sites: dict[str, RunningSite] = {}
        self.ca_file: Path | None = None
        self._stack = contextlib.ExitStack()
        self._logs: list[Path] = []

    def __enter__(self) -> LocalFleet:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(self.workdir / "pki")
        rogue = CertificateAuthority(self.workdir / "pki-untrusted", name="untrusted CA")
        self.ca_file = ca.ca_file
        certs: dict[str, CertFiles] = {}
        for kind, options in CERT_KINDS.items():
            issuer = rogue if kind == "untrusted" else ca
            certs[kind] = issuer.issue(kind, **options)
        shared = [self._start_simulator() for _ in range(self.shared_simulators)]
        if self.shared_faults is not None:
            for port in shared:
                _set_faults(port, self.shared_faults)
        upstreams = []
        for index, spec in enumerate(self.specs):
            if spec.faults is not None:
                upstreams.append(self._start_simulator())
                _set_faults(upstreams[-1], spec.faults)
            else:
                upstreams.append(shared[index % len(shared)])
        # Caddy's ports are picked only once every simulator listens: a simulator bound to
        # port 0 after them could be handed one of these just-freed ports, and Caddy then
        # failed with "address already in use"
        caddy_sites = []
        port_pool = iter(free_ports(2 * len(self.specs)))
        for spec, upstream in zip(self.specs, upstreams, strict=True):
            site = RunningSite(
                spec=spec,
                https_port=next(port_pool),
                http_port=next(port_pool) if spec.redirect else None,
                simulator_port=upstream,
            )
            self.sites[spec.name] = site
            caddy_sites.append(
                Site(
                    https_port=site.https_port,
                    upstream_port=upstream,
                    cert=certs[spec.cert],
                    http_port=site.http_port,
                    hsts=spec.hsts,
                    api_key=spec.api_key,
                    block_write_endpoints=spec.block_write_endpoints,
                )
            )
        caddyfile = self.workdir / "Caddyfile"
        caddyfile.write_text(render_caddyfile(caddy_sites, storage_dir=self.workdir / "caddy"))
        ports = [p for s in self.sites.values() for p in (s.https_port, s.http_port) if p]
        self._stack.enter_context(CaddyProcess(caddyfile, ports=ports))

    def _start_simulator(self) -> int:
        if not self.in_processes:
            return self._stack.enter_context(serve_in_thread(create_app(self.simulator)))
        # --port 0: the simulator binds a free port itself and its banner says which, so
        # no port is chosen here and then lost to another process before the bind
        command = [sys.executable, "-m", "ollama_fleet", "simulator", "--port", "0"]
        command += ["--tokens-per-second", str(self.simulator.tokens_per_second)]
        for model in self.simulator.models:
            command += ["--model", model.name]
        log = self.workdir / f"simulator-{len(self._logs)}.log"
        self._logs.append(log)
        with log.open("wb") as stderr:  # a file, not a pipe that nobody reads and that fills
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
            )
        self._stack.callback(_terminate, proc)
        return _port_from_banner(proc, log)

    def inventory(self, **all_vars: Any) -> dict[str, Any]:
        """The fleet as an inventory mapping; `all_vars` go into `all.vars`."""
        hosts: dict[str, Any] = {}
        for name, site in self.sites.items():
            host: dict[str, Any] = {"public_url": site.url, "closed_ports": []}
            if site.http_url:
                host["http_url"] = site.http_url
            host.update(site.spec.host_vars)
            hosts[name] = host
        return {"all": {"vars": {"tls_ca_file": str(self.ca_file), **all_vars}, "hosts": hosts}}

    def write_inventory(self, path: Path, **all_vars: Any) -> Path:
        path.write_text(yaml.safe_dump(self.inventory(**all_vars), sort_keys=False))
        return path


def _set_faults(port: int, faults: Faults) -> None:
    response = httpx.put(f"http://127.0.0.1:{port}/_simulator/faults", json=asdict(faults))
    if response.status_code != 200:
        raise TestbedError(f"simulator on {port} refused faults: {response.text}")


def _port_from_banner(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port in the first line `ollama-fleet simulator` prints, once it listens there."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_S)
    if not ready:
        raise TestbedError(f"simulator printed no banner within {STARTUP_TIMEOUT_S:g} s; see {log}")
    line = proc.stdout.readline().decode(errors="replace")
    match = BANNER_PORT.search(line)
    if match is not None:
        return int(match.group(1))
    if not line:  # stdout closed before the banner: the process is ending
        try:
            code = proc.wait(timeout=STARTUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TestbedError(f"simulator closed its stdout without a banner; see {log}") from None
        raise TestbedError(f"simulator exited with {code}: {_last_line(log)}")
    raise TestbedError(f"simulator printed {line.strip()!r} instead of its banner; see {log}")


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
