"""Deploys driven the real way, against strict fake hosts instead of SSH hosts.

A test writes an inventory of `@strictfake/NAME` hosts, plans it with the real controller
(ollama_fleet.controller.make_plan) and runs the real child process (`python -m
ollama_fleet.deploys.runner`), then reads the events a user would see: in dry mode one "plan"
event {host, op, change} per operation, in a real run (whose commands only ever reach the fake
connector) one "op" event per operation, and "prepare_error" for a refused host. One runner
costs a second or two, so each test module deploys all its hosts at once.

The `@strictfake` connector (strict_fake/strict_fake.py) answers a command only from the host's
`x_fake_answers` (x_: a user's own variable, which the strict inventory leaves alone), which
host() writes: the test's own answers, then those of a bare host of its OS
(facts/<os>/, captured from real hosts) and "no such file" for other paths (answers.py). Any
other command fails, and deploy_fakes fails the test listing each command that had no answer:
register an answer for it (answers.py has helpers), or fix the command line.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet.controller import (
    Bundle,
    DeployOptions,
    DeployResult,
    HostOutcome,
    make_plan,
    run_runner,
)
from ollama_fleet.controller import plan as controller_plan
from ollama_fleet.deploys.gateway_fleet import resolve_gateways
from ollama_fleet.inventory import load_inventory
from ollama_fleet.vault import VAULT_TAG, VaultPassword

from .answers import (
    DEFAULT_MODELS_DIR,
    NVIDIA_PCI,
    Answers,
    absent,
    apt_fresh,
    bare_host,
    deb_file,
    dpkg_installed,
    fake_answers,
    file_with,
    nvidia_gpu,
)
from .captured import kernel
from .strict_fake.strict_fake import REPORT_ENV

STRICT_FAKE_DIR = Path(__file__).parent / "strict_fake"
PREFIX = "@strictfake/"


def host(*answers: Answers, distro: str = "debian12", **data: Any) -> dict[str, Any]:
    """A strict fake host's inventory entry: its variables `data`, and what it answers:
    `answers` first, then a bare `distro` host's facts, then "no such file" elsewhere."""
    merged: Answers = {}
    for more in answers:
        merged.update(more)
    models_dir = str(data.get("ollama_models_dir", DEFAULT_MODELS_DIR))
    for more in (bare_host(distro, models_dir=models_dir), absent()):
        for key, value in more.items():
            merged.setdefault(key, value)
    return {**data, "x_fake_answers": fake_answers(merged)}


def gpu_host(
    distro: str,
    *answers: Answers,
    installed: Iterable[str] = (),
    driver: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A host of `distro` with one NVIDIA GPU, nvidia-smi reporting `driver`, `installed`
    packages on top of the bare host's, and more `answers`."""
    packages = list(installed)
    return host(
        *answers,
        *([dpkg_installed(distro, *packages)] if packages else []),
        nvidia_gpu(driver, devices=[NVIDIA_PCI]),
        distro=distro,
        **data,
    )


HEADERS_METAPACKAGE = {
    "debian12": "linux-headers-amd64",
    "ubuntu2404": "linux-headers-generic",
    "ubuntu2204": "linux-headers-generic",
}


def headers(distro: str) -> tuple[str, str, str]:
    """What the gpu role installs to build the driver: DKMS, the running kernel's headers and
    the metapackage that follows kernel updates."""
    return ("dkms", f"linux-headers-{kernel(distro)}", HEADERS_METAPACKAGE[distro])


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
        """Dry run: {operation: would change} for host `name`, in plan order."""
        return {
            str(e["op"]): bool(e["change"])
            for e in self.events
            if e.get("event") == "plan" and e.get("host") == PREFIX + name
        }

    def changes(self, name: str) -> list[str]:
        """Dry run: the operations that would change something on host `name`."""
        return [op for op, change in self.plans(name).items() if change]

    def ops(self, name: str) -> list[dict[str, Any]]:
        """Real run: the "op" events of host `name`, in order."""
        return [e for e in self.events if e.get("event") == "op" and e.get("host") == PREFIX + name]

    def outcome(self, name: str) -> HostOutcome:
        return next(h for h in self.result.hosts if h.name == PREFIX + name)

    def refusal(self, name: str) -> str | None:
        found = [
            str(e["error"])
            for e in self.events
            if e.get("event") == "prepare_error" and e.get("host") == PREFIX + name
        ]
        return found[0] if found else None


def write_inventory(folder: Path, hosts: Mapping[str, Mapping[str, Any]], **common: Any) -> Path:
    """An inventory of `@strictfake/NAME` hosts (their answers kept in order)."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "all": {
            "vars": {
                "caddy_site_names": ["llm.example.test"],  # "@strictfake/x" is no host name
                **common,
            },
            "hosts": {PREFIX + name: dict(data) for name, data in hosts.items()},
        }
    }
    path = folder / "inventory.yml"
    text = yaml.dump(document, Dumper=_InventoryDumper, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def unanswered(report: Path) -> list[str]:
    """The strict fake's refusals written to `report`: "[host] problem command", once each."""
    if not report.is_file():
        return []
    lines = report.read_text(encoding="utf-8").splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return list(dict.fromkeys(f"[{e['host']}] {e['problem']}{e['command']}" for e in found))


@contextmanager
def strict_fakes(report: Path) -> Iterator[None]:
    """The deploy's child process finds the `@strictfake` connector and reports to `report`."""
    path = os.pathsep.join(filter(None, [str(STRICT_FAKE_DIR), os.environ.get("PYTHONPATH")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)
        patch.setenv(REPORT_ENV, str(report))
        yield


def run_strict(
    spec: Mapping[str, Any],
    report: Path,
    *,
    on_event: Callable[[dict[str, Any]], None],
    log: io.StringIO,
    secrets: Iterable[str] = (),
) -> DeployResult:
    """run_runner against strict fake hosts; a command without an answer fails the test."""
    report.unlink(missing_ok=True)
    with strict_fakes(report):
        result = run_runner(spec, on_event=on_event, log=log, secrets=secrets)
    missing = unanswered(report)
    if missing:
        pytest.fail(
            f"{len(missing)} command(s) had no answer from the strict fake hosts; register "
            "one (tests/deploys/answers.py) or fix the command line:\n" + "\n".join(missing),
            pytrace=False,
        )
    return result


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
    inventory = resolve_gateways(inventory)  # as `ollama-fleet deploy` does
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
        result = run_strict(
            spec,
            folder / "strict-fake-report.jsonl",
            on_event=events.append,
            log=log,
            secrets=controller_secrets,
        )
        gc.collect()
    return Deployed(events=events, log=log.getvalue(), result=result, spec=spec)


def gpu_up_to_date(**data: Any) -> dict[str, Any]:
    """A Ubuntu 24.04 GPU host that already has everything the gpu role would install."""
    from ollama_fleet.deploys.gpu import BLACKLIST, KEYRING_DEB, MODULES

    return gpu_host(
        "ubuntu2404",
        file_with("/etc/modprobe.d/blacklist-nouveau.conf", BLACKLIST),
        file_with("/etc/modules-load.d/nvidia.conf", MODULES),
        deb_file(KEYRING_DEB, "cuda-keyring", "1.1-1"),
        apt_fresh(),
        installed=[
            "cuda-keyring",
            *headers("ubuntu2404"),
            "nvidia-driver-pinning-580",
            "nvidia-open",
        ],
        driver="580.65.06",
        **data,
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
        # where make_plan looks it up (a name bound in ollama_fleet.controller.plan)
        patch.setattr(controller_plan, "build_bundle", lambda cache_dir, build=True: bundle)
        yield bundle


def release_line(artifact: Path, version: str) -> str:
    """What the ollama role writes to /opt/ollama/RELEASE after installing `artifact`."""
    return f"{version} sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}"
