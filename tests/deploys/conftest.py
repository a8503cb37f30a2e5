"""Deploys driven the real way, against pyinfra's @fake connector instead of SSH hosts.

A test writes an inventory of `@fake/NAME` hosts whose `fake_responses` say what the host's
commands print, plans it with the real controller (ollama_fleet.deploy.make_plan) and runs the
real child process (`python -m ollama_fleet.deploys.runner`), then reads the events a user would
see: in dry mode one "plan" event {host, op, change} per operation, in a real run (whose commands
only ever reach the fake connector) one "op" event per operation, and "prepare_error" for a
refused host. One runner costs a second or two, so each test module deploys all its hosts at once.

The fake connector matches a SUBSTRING of each command, first match in insertion order, and
answers anything unmatched with success and no output. pyinfra wraps fact commands in
`if command -v TOOL ...`, so the catch-all `command -v` answer must come after every specific
one (`host()` puts it last), and the inventory is written without sorting its keys.
"""

from __future__ import annotations

import gc
import hashlib
import io
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet import deploy
from ollama_fleet.deploy import (
    Bundle,
    DeployOptions,
    DeployResult,
    HostOutcome,
    make_plan,
    run_runner,
)
from ollama_fleet.inventory import load_inventory
from ollama_fleet.vault import VAULT_TAG, VaultPassword

Responses = dict[str, Any]

# What pyinfra asks every host while connecting; anything else unmatched prints nothing.
CONNECT_RESPONSES: Responses = {"uname -s": ["Linux"], "command -v": ["/usr/bin/found"]}
# lspci's line is prefixed "pci " by the fact's own sed, which the fake connector does not run.
NVIDIA_PCI = "pci 01:00.0 0302: 10de:2330 (rev a1)"
KERNEL = "6.8.0-45-generic"
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"

OS_RELEASE = {
    "ubuntu2404": ["ID=ubuntu", 'VERSION_ID="24.04"', "VERSION_CODENAME=noble"],
    "ubuntu2204": ["ID=ubuntu", 'VERSION_ID="22.04"', "VERSION_CODENAME=jammy"],
    "debian12": ["ID=debian", 'VERSION_ID="12"', "VERSION_CODENAME=bookworm"],
    "centos9": ["ID=centos", 'VERSION_ID="9"'],
}


def host(responses: Mapping[str, Any] | None = None, /, **data: Any) -> dict[str, Any]:
    """A fake host's inventory entry: its variables and its commands' answers."""
    return {**data, "fake_responses": {**(responses or {}), **CONNECT_RESPONSES}}


def gpu_host(distro: str, *answers: Responses, driver: str | None = None) -> Responses:
    """Answers of a host with one NVIDIA GPU on `distro`, nvidia-smi reporting `driver`, and
    more `answers` (facts the roles read beyond these)."""
    found: Responses = {
        "lspci -n -d 10de:": [NVIDIA_PCI] + ([f"driver {driver}"] if driver else []),
        "cat /etc/os-release": OS_RELEASE[distro],
        "uname -r": [KERNEL],
    }
    for more in answers:
        found.update(more)
    return found


def stat_line(path: str, *, mode: str = "-rw-r--r--", mtime: int = 0) -> list[str]:
    """What pyinfra's File fact reads from `stat` for an existing file owned by root."""
    return [
        f"user=root group=root mode={mode} atime={mtime} mtime={mtime} ctime={mtime} "
        f"size=64 '{path}'"
    ]


def file_with(path: str, content: str) -> Responses:
    """Answers saying `path` exists, owned by root, mode 644, holding `content`."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    return {f"sha256sum {path} ": [f"{digest}  {path}"], f"test -L {path} ": stat_line(path)}


def apt_fresh() -> Responses:
    """Answers saying `apt-get update` ran a moment ago (so cache_time skips it)."""
    now = datetime.now(UTC)
    return {
        f"test -L {APT_STAMP} ": stat_line(APT_STAMP, mtime=int(now.timestamp())),
        "date +": [now.strftime("%Y-%m-%dT%H:%M:%S%z")],
    }


def dpkg_installed(*packages: str) -> Responses:
    """`dpkg -l` listing `packages` as installed, each at version 1.0."""
    return {"dpkg -l": [f"ii  {name}  1.0  amd64  installed" for name in packages]}


def deb_file(path: str, package: str) -> Responses:
    """The package file at `path` (our cache) is already there and holds `package` 1.0."""
    folder = path.rsplit("/", 1)[0]
    return {
        f"test -L {folder} ": stat_line(folder, mode="drwx------"),
        f"test -L {path} ": stat_line(path),
        f"dpkg -I {path}": [f"Package: {package}", "Version: 1.0"],
    }


@dataclass(frozen=True, slots=True)
class Vaulted:
    """An inline `!vault |` value in the written inventory (`text` from vault.encrypt_text)."""

    text: str


class _InventoryDumper(yaml.SafeDumper):
    pass


_InventoryDumper.add_representer(
    Vaulted, lambda dumper, value: dumper.represent_scalar(VAULT_TAG, value.text, style="|")
)


@dataclass(frozen=True, slots=True)
class Deployed:
    """What one deploy showed: its events, the runner's log and the controller's tally."""

    events: list[dict[str, Any]]
    log: str
    result: DeployResult
    spec: dict[str, Any]

    def plans(self, name: str) -> dict[str, bool]:
        """Dry run: {operation: would change} for `@fake/name`, in plan order."""
        return {
            str(e["op"]): bool(e["change"])
            for e in self.events
            if e.get("event") == "plan" and e.get("host") == f"@fake/{name}"
        }

    def changes(self, name: str) -> list[str]:
        """Dry run: the operations that would change something on `@fake/name`."""
        return [op for op, change in self.plans(name).items() if change]

    def ops(self, name: str) -> list[dict[str, Any]]:
        """Real run: the "op" events of `@fake/name`, in order."""
        return [
            e for e in self.events if e.get("event") == "op" and e.get("host") == f"@fake/{name}"
        ]

    def outcome(self, name: str) -> HostOutcome:
        return next(h for h in self.result.hosts if h.name == f"@fake/{name}")

    def refusal(self, name: str) -> str | None:
        found = [
            str(e["error"])
            for e in self.events
            if e.get("event") == "prepare_error" and e.get("host") == f"@fake/{name}"
        ]
        return found[0] if found else None


def write_inventory(folder: Path, hosts: Mapping[str, Mapping[str, Any]], **common: Any) -> Path:
    """An inventory of `@fake/NAME` hosts (keys kept in order: first fake match wins)."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "all": {
            "vars": {
                "fake_delay": 0,
                "fake_delay_jitter": 0,  # else each command sleeps up to 0.4 s
                "caddy_site_names": ["llm.example.test"],  # "@fake/x" is no host name
                **common,
            },
            "hosts": {f"@fake/{name}": dict(data) for name, data in hosts.items()},
        }
    }
    path = folder / "inventory.yml"
    text = yaml.dump(document, Dumper=_InventoryDumper, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def deploy_fakes(
    folder: Path,
    hosts: Mapping[str, Mapping[str, Any]],
    *,
    roles: Iterable[str],
    dry: bool = True,
    verbose: bool = False,
    diff: bool = False,
    vault: VaultPassword | None = None,
    redact: Iterable[str] = (),
    controller_secrets: Iterable[str] = (),
    **common: Any,
) -> Deployed:
    """Deploy `hosts` with the real controller and runner; nothing beyond this process tree.

    `redact` adds secrets to the spec (the runner's own redaction); `controller_secrets` are
    what run_runner redacts on this side, as the CLI passes it the plan's secrets.
    """
    inventory = load_inventory(write_inventory(folder, hosts, **common), vault=vault)
    options = DeployOptions(
        dry=dry, diff=diff, verbose=verbose, roles=tuple(roles), cache_dir=folder / "cache"
    )
    plan = make_plan(inventory, options, decrypt=lambda text, path: text)
    spec = {**plan.spec, "redact": sorted({*plan.spec["redact"], *redact})}
    events: list[dict[str, Any]] = []
    log = io.StringIO()
    with warnings.catch_warnings():
        # run_runner leaves its pipes to the garbage collector (test_runner.py shows it)
        warnings.simplefilter("ignore", ResourceWarning)
        result = run_runner(spec, on_event=events.append, log=log, secrets=controller_secrets)
        gc.collect()
    return Deployed(events=events, log=log.getvalue(), result=result, spec=spec)


def gpu_up_to_date() -> Responses:
    """A Ubuntu 24.04 GPU host that already has everything the gpu role would install."""
    from ollama_fleet.deploys.gpu import BLACKLIST, KEYRING_DEB, MODULES

    return gpu_host(
        "ubuntu2404",
        file_with("/etc/modprobe.d/blacklist-nouveau.conf", BLACKLIST),
        file_with("/etc/modules-load.d/nvidia.conf", MODULES),
        deb_file(KEYRING_DEB, "cuda-keyring"),
        dpkg_installed("cuda-keyring", "dkms", f"linux-headers-{KERNEL}", "cuda-drivers-580"),
        apt_fresh(),
        driver="580.65.06",
    )


@contextmanager
def stub_wheel(folder: Path) -> Iterator[Bundle]:
    """The services role's bundle, without building one (pip would reach PyPI)."""
    path = folder / "ollama-fleet-services-test.tar"
    path.write_bytes(b"a stand-in for the project's wheel and its wheels")
    bundle = Bundle(
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        wheel="ollama_fleet-0.1.0-py3-none-any.whl",
        requirements=("httpx>=0.28",),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deploy, "build_bundle", lambda cache_dir: bundle)
        yield bundle


def release_line(artifact: Path, version: str) -> str:
    """What the ollama role writes to /opt/ollama/RELEASE after installing `artifact`."""
    return f"{version} sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}"
