"""`ollama-fleet deploy` on the controller: plan, run pyinfra in a child, follow it, check.

`ollama-fleet deploy`, the controller's side: choose and validate hosts, prepare what the hosts
need from the controller (the Ollama archive, certificate files), run pyinfra in a child process
(ollama_fleet.deploys.runner), follow its events, then run the checks on the hosts that changed.

Nothing here imports pyinfra. Every decrypted vault value is redacted from what the child
prints and from what this module shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import httpx

from ollama_fleet import hostvars
from ollama_fleet.errors import ConfigError, FleetError
from ollama_fleet.fsutil import atomic_write
from ollama_fleet.hostpatterns import select_hosts
from ollama_fleet.inventory import Host, Inventory
from ollama_fleet.lab.image import default_cache_dir
from ollama_fleet.redact import escaped_forms, redact_strings, redactor
from ollama_fleet.vault import NEW_PASSWORD_ENV, PASSWORD_ENV

PREPARED_KEY = "fleet_prepared"  # the runner reads it back (ollama_fleet.deploys.common)
SIMULATOR = "simulator"


class DeployFailed(FleetError):
    """The deploy ran but a host failed, or the checks after it failed.

    `unreachable`: a host could not be reached at all (the CLI exits 4 for it, as Ansible).
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True, kw_only=True)
class HostOutcome:
    name: str
    ops: int = 0
    changed: tuple[str, ...] = ()
    error: str | None = None  # the first failure on this host, already redacted
    planned: tuple[str, ...] = ()  # with --dry: operations that would change something
    unreachable: bool = False  # the failure was the connection: nothing ran there

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployResult:
    hosts: tuple[HostOutcome, ...]
    dry: bool = False

    @property
    def failed(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.failed)

    @property
    def changed(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.changed)

    @property
    def unreachable(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.unreachable)


@dataclass(slots=True)
class _Tally:
    ops: int = 0
    changed: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    error: str | None = None
    unreachable: bool = False


def select_roles(roles: Sequence[str]) -> tuple[str, ...]:
    names = [n.strip() for item in roles for n in item.split(",") if n.strip()]
    unknown = sorted(set(names) - set(hostvars.ROLES))
    if unknown:
        raise ConfigError(
            f"--roles: unknown role {unknown[0]!r}; roles: {', '.join(hostvars.ROLES)}"
        )
    return tuple(r for r in hostvars.ROLES if r in names) if names else hostvars.ROLES


# -- what the controller prepares for the hosts ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """The Ollama release a host gets: pushed from the controller, or downloaded by the host."""

    source: str  # "artifact" or "download"
    version: str
    sha256: str
    filename: str
    path: str = ""  # artifact: controller path
    url: str = ""  # download: release URL
    simulator: bool = False
    # download: {dpkg architecture: {filename, sha256, url}}; the host picks its own
    arches: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "filename": self.filename,
            "path": self.path,
            "url": self.url,
            "arches": {arch: dict(files) for arch, files in self.arches.items()},
        }


# The release archives per host architecture (dpkg's names), as each release's sha256sum.txt
# lists them; a host of another architecture is refused by the ollama role.
ARCHIVES = {"amd64": "ollama-linux-amd64.tgz", "arm64": "ollama-linux-arm64.tgz"}
_ARCHIVE_NAME = re.compile(r"[A-Za-z0-9._+-]+\.(tgz|tar\.gz|tar\.zst)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_from_sums(text: str, filename: str) -> str | None:
    """The digest of `filename` in a sha256sum.txt ("HEX  ./name" or "HEX  name" lines)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].removeprefix("./").lstrip("*") == filename:
            return parts[0].lower()
    return None


def resolve_release(
    ollama_vars: Mapping[str, Any],
    *,
    where: str,
    inventory_dir: Path,
    cache_dir: Path,
    fetch: Callable[[str], str] | None = None,
    offline: bool = False,
) -> Release:
    """What the ollama role installs, decided on the controller (checksums included).

    `offline` (a dry run): an unpinned download's checksums are not fetched; the release
    carries an empty sha256 and the role plans the download as "checksum read on apply".
    """
    artifact = str(ollama_vars["ollama_artifact"])
    version = str(ollama_vars["ollama_version"])
    if artifact == SIMULATOR:
        from ollama_fleet.simulator.artifact import build_artifact

        built = build_artifact(cache_dir / "artifacts")
        return Release(
            source="artifact",
            version=built.version,
            sha256=built.sha256,
            filename=built.path.name,
            path=str(built.path),
            simulator=True,
        )
    if artifact:
        path = hostvars.controller_path(artifact, inventory_dir / "x")
        if not path.is_file():
            raise ConfigError(f"{where}: ollama_artifact: no such file {str(path)!r}")
        sha = file_sha256(path)
        pinned = str(ollama_vars["ollama_sha256"])
        if pinned and pinned != sha:
            raise ConfigError(
                f"{where}: ollama_artifact {path.name} has sha256 {sha[:12]}..., "
                f"not ollama_sha256 {pinned[:12]}..."
            )
        if not _ARCHIVE_NAME.fullmatch(path.name):
            raise ConfigError(
                f"{where}: ollama_artifact: {path.name!r}: the file name may hold only letters, "
                "digits and . _ + - and must end in .tgz, .tar.gz or .tar.zst"
            )
        return Release(
            source="artifact", version=version, sha256=sha, filename=path.name, path=str(path)
        )
    base = f"{str(ollama_vars['ollama_download_base']).rstrip('/')}/v{version}"
    pinned = str(ollama_vars["ollama_sha256"])
    if pinned:
        # one pinned digest: the archive of the host's architecture must match it on the host
        by_arch = {arch: pinned for arch in ARCHIVES}
    elif offline:
        by_arch = {arch: "" for arch in ARCHIVES}
    else:
        sums_url = f"{base}/sha256sum.txt"
        try:
            text = (fetch or _fetch)(sums_url)
        except httpx.HTTPError as exc:
            raise FleetError(f"{where}: cannot read {sums_url}: {exc}") from None
        by_arch = {}
        for arch, filename in ARCHIVES.items():
            found = sha256_from_sums(text, filename)
            if found is not None:
                by_arch[arch] = found
        if not by_arch:
            raise FleetError(f"{where}: {sums_url} lists none of {', '.join(ARCHIVES.values())}")
    first = next(iter(by_arch))
    return Release(
        source="download",
        version=version,
        sha256=by_arch[first],
        filename=ARCHIVES[first],
        url=f"{base}/{ARCHIVES[first]}",
        arches={
            arch: {"filename": ARCHIVES[arch], "sha256": sha, "url": f"{base}/{ARCHIVES[arch]}"}
            for arch, sha in by_arch.items()
        },
    )


def _fetch(url: str) -> str:
    answer = httpx.get(url, follow_redirects=True, timeout=30.0)
    answer.raise_for_status()
    return answer.text


def read_controller_file(
    value: str, *, where: str, inventory_dir: Path, decrypt: Callable[[str, Path], str]
) -> str:
    path = hostvars.controller_path(value, inventory_dir / "x")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {str(path)!r} is not a PEM (text) file") from None
    return decrypt(text, path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """This project's wheel and every wheel it needs on a host, in one reproducible archive.

    Hosts install from it with `pip --no-index`: no index, proxy or internet needed on them.
    """

    path: Path
    sha256: str
    wheel: str  # the project's wheel file name inside the archive
    requirements: tuple[str, ...]
    requires_python: str = field(default_factory=lambda: project_requires_python())

    def as_data(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "filename": self.path.name,
            "sha256": self.sha256,
            "wheel": self.wheel,
            "requirements": list(self.requirements),
            "requires_python": self.requires_python,
        }


def project_requires_python() -> str:
    """The wheel's Requires-Python, which the services role checks each host's python3 against."""
    from importlib.metadata import metadata

    return str(metadata("ollama-fleet")["Requires-Python"] or "")


# Python versions of the supported hosts: Ubuntu 22.04 (3.10), Debian 12 (3.11), Ubuntu 24.04
HOST_PYTHONS = ("3.10", "3.11", "3.12")
HOST_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def project_root() -> Path | None:
    """The source checkout this package runs from, or None when it was installed from a wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src").is_dir() else None


def service_requirements() -> tuple[str, ...]:
    """The distribution's requirements minus pyinfra (hosts run checks, never deploys)."""
    from importlib.metadata import requires

    wanted = []
    for requirement in requires("ollama-fleet") or []:
        if "extra ==" in requirement or requirement.lower().startswith("pyinfra"):
            continue
        wanted.append(requirement.split(";")[0].strip())
    return tuple(wanted)


def _sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in [root / "pyproject.toml", *sorted((root / "src").rglob("*"))]:
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pip(*args: str) -> None:
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise FleetError(f"services: pip {args[0]} failed: {last[0]}") from None


def build_bundle(cache_dir: Path) -> Bundle:
    """Build (or reuse, keyed by the sources' hash) the services bundle on the controller."""
    import io
    import tarfile

    root = project_root()
    if root is None:
        raise ConfigError(
            "services: this ollama-fleet is not a source checkout, so its wheel cannot be built; "
            "run the deploy from a checkout (or set services_enabled: false)"
        )
    requirements = service_requirements()
    key = hashlib.sha256(
        (_sources_digest(root) + "\n".join(requirements + HOST_PYTHONS)).encode()
    ).hexdigest()[:16]
    folder = cache_dir / "bundles" / key
    archive = folder / f"ollama-fleet-services-{key}.tar"
    if not archive.is_file():
        work = cache_dir / "bundles" / f".{key}.tmp"
        if work.exists():
            import shutil

            shutil.rmtree(work)
        wheels = work / "wheels"
        _pip("wheel", "--no-deps", "-q", "-w", str(wheels), str(root))
        for version in HOST_PYTHONS:
            platforms = [arg for p in HOST_PLATFORMS for arg in ("--platform", p)]
            _pip(
                "download",
                "-q",
                "-d",
                str(wheels),
                "--only-binary=:all:",
                "--python-version",
                version,
                *platforms,
                *requirements,
            )
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            listing = "\n".join(requirements) + "\n"
            entries = [("requirements.txt", listing.encode())] + [
                (f"wheels/{p.name}", p.read_bytes()) for p in sorted(wheels.glob("*.whl"))
            ]
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                info.uname = info.gname = "root"
                tar.addfile(info, io.BytesIO(data))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wheel").write_text(next(wheels.glob("ollama_fleet-*.whl")).name)
        # the archive last: it marks the folder complete
        atomic_write(archive, raw.getvalue(), mode=0o644, what="services bundle")
        import shutil

        shutil.rmtree(work)
    return Bundle(
        path=archive,
        sha256=file_sha256(archive),
        wheel=(folder / "wheel").read_text().strip(),
        requirements=requirements,
    )


# -- the child process -------------------------------------------------------------------------


def host_entry(host: Host, prepared: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": host.name,
        "groups": list(host.groups),
        "data": {**dict(host.vars), PREPARED_KEY: dict(prepared)},
    }


Event = dict[str, Any]


def run_runner(
    spec: Mapping[str, Any],
    *,
    on_event: Callable[[Event], None],
    log: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> DeployResult:
    """Run the pyinfra child with `spec` (sent on its stdin, never on disk) and tally its events."""
    redact = redactor(secrets)
    log = log or sys.stderr
    # The child gets the decrypted values it needs in the plan; it never needs the password.
    hidden = {PASSWORD_ENV, NEW_PASSWORD_ENV}
    env = {**{k: v for k, v in os.environ.items() if k not in hidden}, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", "ollama_fleet.deploys.runner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin and process.stdout and process.stderr

    def pump_log() -> None:
        assert process.stderr
        for line in process.stderr:
            log.write(redact(line))
            log.flush()

    pump = threading.Thread(target=pump_log, daemon=True)
    pump.start()
    process.stdin.write(json.dumps(spec))
    process.stdin.close()
    tallies: dict[str, _Tally] = {h["name"]: _Tally() for h in spec["hosts"]}
    finished = False
    for line in process.stdout:
        try:
            event = redact_strings(json.loads(line), redact)
        except ValueError:
            log.write(redact(line))
            continue
        _tally(tallies, event)
        finished = finished or event.get("event") == "done"
        on_event(event)
    code = process.wait()
    pump.join(timeout=5)
    process.stdout.close()
    process.stderr.close()
    if code not in (0, 1) or not finished:
        raise FleetError(
            f"the deploy process stopped unexpectedly (status {code}); see its log above"
        )
    return DeployResult(
        hosts=tuple(
            HostOutcome(
                name=n,
                ops=t.ops,
                changed=tuple(t.changed),
                error=t.error,
                planned=tuple(t.planned),
                unreachable=t.unreachable,
            )
            for n, t in tallies.items()
        ),
        dry=bool(spec.get("dry")),
    )


def _tally(tallies: dict[str, _Tally], event: Event) -> None:
    kind, name = event.get("event"), event.get("host")
    tally = tallies.get(str(name)) if name is not None else None
    if kind == "done":
        for failed in event.get("failed", []):
            if failed in tallies and tallies[failed].error is None:
                tallies[failed].error = event.get("error") or "failed"
        return
    if tally is None:
        return
    if kind == "op":
        tally.ops += 1
        if event.get("changed"):
            tally.changed.append(str(event["op"]))
        if not event.get("ok") and tally.error is None:
            detail = str(event.get("error") or "").strip()
            tally.error = f"{event['op']}: {detail}" if detail else str(event["op"])
    elif kind == "plan" and event.get("change"):
        tally.planned.append(str(event["op"]))
    elif kind in ("prepare_error", "connect") and not event.get("ok", False):
        tally.unreachable = tally.unreachable or (tally.error is None and kind == "connect")
        tally.error = tally.error or str(event.get("error"))


# -- the whole deploy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployOptions:
    limit: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    dry: bool = False
    diff: bool = False
    checks: str = "changed"  # "changed", "all" or "none"
    report: Path = Path("out/deploy/checks.html")
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    verbose: bool = False
    snapshot: bool = True  # False: every role runs its operations, converged or not


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Everything decided on the controller before any host is contacted."""

    inventory: Inventory
    hosts: tuple[Host, ...]
    roles: tuple[str, ...]
    spec: dict[str, Any]
    secrets: frozenset[str]
    notes: tuple[str, ...]
    targets: tuple[Any, ...] = ()  # the checks' targets, validated with everything else
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())


def make_plan(
    inventory: Inventory, options: DeployOptions, *, decrypt: Callable[[str, Path], str]
) -> Plan:
    """Choose, validate and prepare: every ConfigError surfaces here, before any SSH."""
    hosts = select_hosts(inventory, options.limit)  # load_inventory validated every value
    roles = select_roles(options.roles)
    secrets = set(inventory.secrets)
    notes: list[str] = []
    entries = []
    bundle: Bundle | None = None
    inventory_dir = inventory.path.parent
    for host in hosts:
        where = f"{inventory.path}: host {host.name}"
        prepared: dict[str, Any] = {}
        if "ollama" in roles and hostvars.enabled(host.vars, "ollama"):
            release = resolve_release(
                hostvars.resolved(host.vars, "ollama"),
                where=where,
                inventory_dir=inventory_dir,
                cache_dir=options.cache_dir,
                offline=options.dry,
            )
            prepared["ollama"] = release.as_data()
            if not release.sha256:
                notes.append(
                    f"{host.name}: dry run: Ollama {release.version}'s sha256 is read from "
                    f"{release.url.rsplit('/', 1)[0]}/sha256sum.txt on apply, not now"
                )
            if release.simulator:
                notes.append(
                    f"{host.name}: Ollama comes from the SIMULATOR artifact (a test double of "
                    "Ollama's API, not Ollama): the real binary cannot be downloaded here"
                )
        services = hostvars.resolved(host.vars, "services")
        if "services" in roles and hostvars.enabled(services, "services"):
            bundle = bundle or build_bundle(options.cache_dir)
            prepared["bundle"] = bundle.as_data()
        caddy = hostvars.resolved(host.vars, "caddy")
        if (
            "caddy" in roles
            and caddy["caddy_tls"] == "files"
            and hostvars.enabled(host.vars, "caddy")
        ):
            for key, name in (
                ("caddy_cert", "caddy_tls_cert_file"),
                ("caddy_key", "caddy_tls_key_file"),
            ):  # noqa: E501
                prepared[key] = read_controller_file(
                    str(caddy[name]),
                    where=f"{where}: {name}",
                    inventory_dir=inventory_dir,
                    decrypt=decrypt,
                )
            secrets.add(prepared["caddy_key"])
        entries.append(host_entry(host, prepared))
    spec = {
        "hosts": entries,
        "roles": list(roles),
        "dry": options.dry,
        "diff": options.diff,
        "verbose": options.verbose,
        "redact": sorted(secrets),
        "snapshot": options.snapshot,
    }
    targets: tuple[Any, ...] = ()
    if options.checks != "none" and any(h.vars.get("public_url") for h in hosts):
        from ollama_fleet.checks.targets import targets_from_inventory

        chosen = {h.name for h in hosts}
        targets = tuple(t for t in targets_from_inventory(inventory) if t.name in chosen)
    return Plan(
        inventory=inventory,
        hosts=hosts,
        roles=roles,
        spec=spec,
        secrets=frozenset(secrets),
        notes=tuple(notes),
        targets=targets,
        cache_dir=options.cache_dir,
    )


def hosts_to_check(result: DeployResult, plan: Plan, mode: str) -> tuple[str, ...]:
    """Hosts whose endpoints are checked after the deploy (only those with a public_url)."""
    if mode == "none" or result.dry:
        return ()
    names = {h.name for h in (result.hosts if mode == "all" else result.changed)}
    return tuple(h.name for h in plan.hosts if h.name in names and h.vars.get("public_url"))


# Where Debian's caddy (user caddy, home /var/lib/caddy) keeps the root of `tls internal`.
CADDY_LOCAL_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def read_host_files(
    plan: Plan, names: Sequence[str], paths: Sequence[str], *, log: IO[str] | None = None
) -> dict[str, dict[str, str | None]]:
    """{host: {path: text or None}} read over SSH by the pyinfra child; nothing is changed."""
    entries = [e for e in plan.spec["hosts"] if e["name"] in set(names)]
    if not entries or not paths:
        return {}
    spec = {**plan.spec, "hosts": entries, "read": list(paths), "dry": True}
    found: dict[str, dict[str, str | None]] = {}

    def keep(event: Event) -> None:
        if event.get("event") == "file":
            found.setdefault(str(event["host"]), {})[str(event["path"])] = event.get("text")

    run_runner(spec, on_event=keep, log=log, secrets=plan.secrets)
    return found


def trust_caddy_roots(plan: Plan, targets: Sequence[Any]) -> list[Any]:
    """Targets of `caddy_tls: internal` hosts verified against that host's own Caddy root.

    Caddy's local CA lives on the host; it is fetched after the deploy (it may have just been
    made), kept under the cache folder, and named as the target's CA, so the checks verify
    the chain and the name instead of turning verification off. A target that names its
    own tls_ca_file keeps it.
    """

    hosts = {h.name: h for h in plan.hosts}
    internal = [
        t.name
        for t in targets
        if t.tls.ca_file is None
        and t.name in hosts
        and hostvars.enabled(hosts[t.name].vars, "caddy")
        and hostvars.resolved(hosts[t.name].vars, "caddy")["caddy_tls"] == "internal"
    ]
    if not internal:
        return list(targets)
    roots = read_host_files(plan, internal, [CADDY_LOCAL_ROOT])
    trusted = []
    for target in targets:
        pem = roots.get(target.name, {}).get(CADDY_LOCAL_ROOT)
        if target.name in internal and pem and "BEGIN CERTIFICATE" in pem:
            path = plan.cache_dir / "caddy-roots" / f"{_safe_name(target.name)}.pem"
            atomic_write(path, pem, mode=0o644, what="Caddy root certificate")
            target = replace(target, tls=replace(target.tls, ca_file=str(path)))
        trusted.append(target)
    return trusted


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def check_hosts(plan: Plan, names: Sequence[str], report: Path, *, command: str = "") -> Any:
    """Run every check on `names` (hosts with a public_url); write the HTML report atomically."""
    import asyncio
    import platform

    from ollama_fleet.checks.model import RunContext
    from ollama_fleet.checks.reports import render_html
    from ollama_fleet.checks.runner import run_checks

    chosen = [t for t in plan.targets if t.name in set(names)]
    targets = trust_caddy_roots(plan, chosen)
    run = asyncio.run(run_checks(targets))
    context = RunContext(
        command=command, inventory=str(plan.inventory.path), controller=platform.node()
    )
    run = replace(run, context=context)
    redact = redactor(escaped_forms(plan.secrets))
    atomic_write(report, redact(render_html(run)), what="report")
    return run


def write_retry_file(path: Path, result: DeployResult) -> Path | None:
    """The failed and unreachable hosts, one per line, for `--limit @FILE` (as Ansible's)."""
    names = [h.name for h in result.failed]
    if not names:
        return None
    try:
        atomic_write(path, "".join(f"{name}\n" for name in names), what="retry file")
    except ConfigError:
        return None  # a retry file is a convenience: the deploy's own error says what failed
    return path
