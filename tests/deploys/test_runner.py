"""The deploy's child process as the controller drives it: real runs on fake hosts, failures,
and secrets that must never reach its events or its log.
"""

from __future__ import annotations

import gc
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_fleet import vault
from ollama_fleet.controller import DeployOptions, make_plan, run_runner
from ollama_fleet.deploys.common import STATE_DIR
from ollama_fleet.deploys.gpu import KEYRING_DEB, REBOOT_MARKER
from ollama_fleet.errors import FleetError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.vault import VaultPassword, encrypt_text

from .answers import APT_STAMP, Answers, answer, apt_fresh, regex
from .commands import (
    APT_UPDATE_OUTPUT,
    TEMP_FILE,
    apt_install,
    downloads,
    installs_deb,
    installs_file,
    succeeds,
)
from .conftest import (
    Deployed,
    Vaulted,
    deploy_fakes,
    gpu_host,
    gpu_up_to_date,
    headers,
    host,
    run_strict,
    stub_wheel,
    write_inventory,
)

pytestmark = pytest.mark.integration

DRIVER_OP = "gpu: NVIDIA driver 580 (ubuntu2404, open kernel modules)"
MARKER_OP = "gpu: driver changed, REBOOT NEEDED (gpu_allow_reboot is false)"
DRIVER = (*headers("ubuntu2404"), "nvidia-driver-pinning-580", "nvidia-open")
APT_ERROR = "E: Unable to locate package nvidia-driver-pinning-580"
KEYRING_URL = (
    "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/"
    "cuda-keyring_1.1-1_all.deb"
)

# -- a real (not dry) run: every command goes to the fake connector ------------------------------


def gpu_role_commands(driver_install: dict[str, Any]) -> Answers:
    """What the gpu role runs on a bare Ubuntu 24.04 GPU host, in the order it must: the CUDA
    repository's keyring before the `apt-get update` that reads it, that before the driver."""
    keyring = f"dpkg --force-confdef --force-confold -i {KEYRING_DEB}"
    return {
        **installs_file("/etc/modprobe.d/blacklist-nouveau.conf", then=["update-initramfs -u"]),
        **installs_file("/etc/modules-load.d/nvidia.conf"),
        **succeeds("mkdir -p /var/cache/ollama-fleet"),
        "chmod 700 /var/cache/ollama-fleet": answer(after=["mkdir -p /var/cache/ollama-fleet"]),
        **downloads(KEYRING_URL, KEYRING_DEB),
        **installs_deb(KEYRING_DEB, after=[regex(f"mv {TEMP_FILE} {KEYRING_DEB}")]),
        "apt-get update": answer(APT_UPDATE_OUTPUT, after=[keyring]),
        f"touch {APT_STAMP}": answer(after=["apt-get update"]),
        apt_install(*DRIVER): {**answer(after=[keyring, "apt-get update"]), **driver_install},
        # the role's first apt step (curl, CA certificates, gnupg) refreshes a stale cache
        # before the keyring exists: an update then reads no NVIDIA repository yet
        regex("apt-get update"): answer(APT_UPDATE_OUTPUT),
        **succeeds(apt_install("ca-certificates", "curl", "gnupg")),
        f"mkdir -p {STATE_DIR} && cat /proc/sys/kernel/random/boot_id > {REBOOT_MARKER}": answer(
            after=[apt_install(*DRIVER)]
        ),
    }


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    hosts = {
        "current": gpu_up_to_date(),
        "fresh": gpu_host("ubuntu2404", gpu_role_commands({})),
        # apt's lists are an hour fresh: apt.packages' cache_time skips its own apt-get update
        "fresh-lists": gpu_host("ubuntu2404", apt_fresh(), gpu_role_commands({})),
        "broken": gpu_host(
            "ubuntu2404", gpu_role_commands({"stderr": [APT_ERROR], "success": False})
        ),
    }
    return deploy_fakes(tmp_path_factory.mktemp("real"), hosts, roles=["gpu"], dry=False)


def test_real_run_reports_each_operation_as_it_finishes(real_run: Deployed) -> None:
    ops = real_run.ops("fresh")

    names = [e["op"] for e in ops]
    assert names.index("gpu: blacklist nouveau") < names.index(DRIVER_OP) < names.index(MARKER_OP)
    assert all(e["ok"] for e in ops)
    outcome = real_run.outcome("fresh")
    assert outcome.error is None
    assert DRIVER_OP in outcome.changed
    assert MARKER_OP in outcome.changed
    assert outcome.ops == len(ops)


def test_the_new_cuda_repository_is_read_before_the_driver_even_with_fresh_lists(
    real_run: Deployed,
) -> None:
    """Its driver install is answered only after an `apt-get update` that followed the
    keyring: without the role's own update for the new source, the install has no answer."""
    outcome = real_run.outcome("fresh-lists")

    assert outcome.error is None
    assert DRIVER_OP in outcome.changed
    assert "gpu: apt-get update for the new source" in outcome.changed


def test_real_run_on_an_up_to_date_host_changes_nothing(real_run: Deployed) -> None:
    ops = real_run.ops("current")

    assert {e["op"] for e in ops} >= {DRIVER_OP, MARKER_OP}
    assert real_run.outcome("current").changed == ()
    assert real_run.outcome("current").error is None


def test_failed_operation_names_itself_and_shows_the_hosts_error(real_run: Deployed) -> None:
    outcome = real_run.outcome("broken")

    assert outcome.error == f"{DRIVER_OP}: {APT_ERROR}"
    failed = [e for e in real_run.ops("broken") if not e["ok"]]
    assert [e["op"] for e in failed] == [DRIVER_OP]
    assert MARKER_OP not in {e["op"] for e in real_run.ops("broken")}  # the host stopped there
    assert [h.name for h in real_run.result.failed] == ["@strictfake/broken"]
    assert real_run.outcome("fresh").error is None


def test_runner_that_dies_fails_the_deploy() -> None:
    broken_spec: dict[str, Any] = {
        "hosts": [{"name": "@strictfake/x", "data": {}}],
        "roles": ["gpu"],
    }
    log = io.StringIO()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(FleetError, match="stopped unexpectedly"):
            run_runner(broken_spec, on_event=lambda event: None, log=log)
        gc.collect()
    assert "KeyError" in log.getvalue()


def test_run_runner_closes_its_pipes(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {"one": host()}))
    plan = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("firewall",), cache_dir=tmp_path),
        decrypt=lambda text, path: text,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = run_strict(
            plan.spec, tmp_path / "report.jsonl", on_event=lambda event: None, log=io.StringIO()
        )
        gc.collect()

    assert result.hosts[0].planned  # it did run
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


# -- secrets -------------------------------------------------------------------------------------

PASSWORD = VaultPassword("deploy-tests-vault-pass")
SECRET = "sk-secret-123"
PREFIX = "sk-secret"  # also a secret: the longer one must be replaced whole
ESCAPED = 'pa"ss\\wörd'  # JSON writes it as pa\"ss\\w\u00f6rd


@pytest.fixture(scope="module")
def fast_scrypt() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vault, "SCRYPT_N", 2**10)
        yield


def vaulted(text: str) -> Vaulted:
    return Vaulted(encrypt_text(text, PASSWORD))


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory, fast_scrypt: None) -> Deployed:
    folder = tmp_path_factory.mktemp("secrets")
    with stub_wheel(folder):
        hosts = {
            "vaulted": host(
                required_models=[vaulted(SECRET)],
                gateway_api_keys=[vaulted(SECRET)],
                ollama_extra_env={"OLLAMA_API_KEY": vaulted(SECRET)},
                x_backup_token=vaulted(PREFIX),
            ),
            # model names are ASCII now (validated), so the escaping secret goes elsewhere
            "escaped": host(ollama_extra_env={"HTTPS_PROXY": vaulted(ESCAPED)}),
        }
        return deploy_fakes(
            folder,
            hosts,
            roles=["ollama", "models", "services"],
            vault=PASSWORD,
            verbose=True,
            diff=True,
            ollama_sha256="d" * 64,
        )


def test_vault_values_are_redacted_from_events_and_log(secret_run: Deployed) -> None:
    assert SECRET in secret_run.spec["redact"]  # the controller passed the vault value on

    assert "models: pull ***:latest (1/1)" in secret_run.changes("vaulted")
    assert "services: gateway config (API keys hashed)" in secret_run.changes("vaulted")
    assert PREFIX not in json.dumps(secret_run.events)
    assert PREFIX not in secret_run.log
    assert secret_run.log.strip()  # verbose: pyinfra's log was there to leak into


def test_secret_that_json_escapes_is_redacted_too(secret_run: Deployed) -> None:
    assert ESCAPED in secret_run.spec["redact"]
    assert "ollama: environment drop-in" in secret_run.plans("escaped")
    assert ESCAPED not in secret_run.log
    assert json.dumps(ESCAPED)[1:-1] not in json.dumps(secret_run.events)


def test_unexpected_error_does_not_show_a_secret(tmp_path: Path) -> None:
    """A role's unforeseen exception prints a traceback; the controller still redacts it."""
    inventory = load_inventory(write_inventory(tmp_path, {"gpu": gpu_host("debian12")}))
    plan = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("gpu",), cache_dir=tmp_path),
        decrypt=lambda text, path: text,
    )
    # a value the controller would refuse, so that int() fails inside the role with it
    plan.spec["hosts"][0]["data"].update(gpu_allow_reboot=True, gpu_reboot_timeout=SECRET)
    events: list[dict[str, Any]] = []
    log = io.StringIO()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        result = run_strict(
            plan.spec,
            tmp_path / "report.jsonl",
            on_event=events.append,
            log=log,
            secrets=[SECRET],
        )
        gc.collect()

    assert result.hosts[0].error == "ValueError: invalid literal for int() with base 10: '***'"
    assert "Traceback" in log.getvalue()
    assert SECRET not in log.getvalue()
    assert SECRET not in json.dumps(events)


# -- the last host failing: pyinfra stops early, the failure must still be reported -----------

PULL_ERROR = "Error: pull model manifest: file does not exist"


@pytest.fixture(scope="module")
def failed_pull(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    hosts = {
        "only": host(
            {"ollama pull nope:1b": answer(stderr=[PULL_ERROR], success=False)},
            required_models=["nope:1b"],
        )
    }
    return deploy_fakes(tmp_path_factory.mktemp("pull"), hosts, roles=["models"], dry=False)


def test_an_error_inside_the_pull_fails_the_deploy_with_the_models_name(
    failed_pull: Deployed,
) -> None:
    (event,) = [e for e in failed_pull.ops("only") if not e["ok"]]
    assert event["op"] == "models: pull nope:1b (1/1)"
    assert PULL_ERROR in event["error"]
    outcome = failed_pull.outcome("only")
    assert outcome.error is not None
    assert outcome.error.startswith("models: pull nope:1b (1/1): ")
    assert PULL_ERROR in outcome.error
