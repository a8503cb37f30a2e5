"""The deploy's controller side: choosing hosts and roles, validating variables and preparing
what the hosts need, all before any host is contacted (no runner, no network here).
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet.controller import (
    DeployOptions,
    DeployResult,
    HostOutcome,
    Plan,
    hosts_to_check,
    make_plan,
    resolve_release,
    sha256_from_sums,
)
from ollama_fleet.errors import ConfigError, FleetError
from ollama_fleet.hostpatterns import select_hosts
from ollama_fleet.hostvars import resolved
from ollama_fleet.inventory import Inventory, load_inventory
from ollama_fleet.redact import redactor

FLEET = """
all:
  vars:
    ollama_sha256: "{sha}"
  children:
    gpu:
      hosts:
        gpu-1:
          public_url: https://gpu-1.example.net
        gpu-2:
          ollama_keep_alive: 10m
    cpu:
      hosts:
        cpu-1:
          public_url: https://cpu-1.example.net
"""
PINNED = "a" * 64


def write(folder: Path, text: str, name: str = "inventory.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def fleet(folder: Path, extra: dict[str, str] | None = None) -> Inventory:
    """The three-host fleet; `extra` adds "key: value" lines (`;`-separated) to a host's vars."""
    text = FLEET.format(sha=PINNED)
    for name, lines in (extra or {}).items():
        block = "".join(f"\n          {line.strip()}" for line in lines.split(";"))
        text = text.replace(f"        {name}:", f"        {name}:{block}", 1)
    return load_inventory(write(folder, text))


def plan(inventory: Inventory, tmp_path: Path, **options: Any) -> Plan:
    options.setdefault("roles", ("gpu", "ollama", "models", "caddy", "firewall"))
    return make_plan(
        inventory,
        DeployOptions(dry=True, cache_dir=tmp_path / "cache", **options),
        decrypt=lambda text, path: text,
    )


def plan_error(inventory: Inventory, tmp_path: Path, **options: Any) -> str:
    """The ConfigError make_plan raises; it must be one line."""
    with pytest.raises(ConfigError) as info:
        plan(inventory, tmp_path, **options)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# -- validation before any host is touched -------------------------------------------------------


def load_error(folder: Path, extra: dict[str, str]) -> str:
    """The one-line error loading the fleet with `extra` raises, before any plan."""
    with pytest.raises(ConfigError) as info:
        fleet(folder, extra)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def line_of(inventory: Path, text: str) -> int:
    return next(n for n, line in enumerate(inventory.read_text().splitlines(), 1) if text in line)


def test_misspelled_variable_names_file_line_and_the_right_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"gpu-2": "ollama_verison: 0.12.0"})

    path = tmp_path / "inventory.yml"
    assert message == (
        f"{path}:{line_of(path, 'ollama_verison')}: ollama_verison: unknown variable; "
        "did you mean ollama_version?"
    )


def test_wrong_type_names_file_line_variable_and_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"gpu-1": 'ollama_num_parallel: "x"'})

    path = tmp_path / "inventory.yml"
    assert message == (
        f"{path}:{line_of(path, 'ollama_num_parallel')}: ollama_num_parallel: "
        "expected a whole number >= 0, got 'x'"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sshd_port: 70000", "sshd_port: 70000 is not a port (1-65535)"),
        ("gpu_allow_reboot: 'yes'", "gpu_allow_reboot: expected true or false, got 'yes'"),
        ("nvidia_driver_source: nvidia", "nvidia_driver_source: expected one of vendor, distro"),
        ("caddy_tls: acme", "caddy_tls: acme, but caddy_acme_email is not set (host cpu-1)"),
        ("firewall_allow_ollama: [10.0.0.0/33]", "'10.0.0.0/33' is not an IP address or CIDR"),
    ],
)
def test_bad_values_are_refused_at_their_line(tmp_path: Path, line: str, expected: str) -> None:
    message = load_error(tmp_path, {"cpu-1": line})

    path = tmp_path / "inventory.yml"
    assert message.startswith(f"{path}:{line_of(path, line.split(':')[0])}: ")
    assert expected in message


def test_the_users_own_variables_start_with_x(tmp_path: Path) -> None:
    inventory = fleet(tmp_path, {"gpu-1": "x_team: search", "gpu-2": "closed_ports: [11434]"})

    assert [h.name for h in plan(inventory, tmp_path).hosts] == ["gpu-1", "gpu-2", "cpu-1"]
    assert "did you mean" not in load_error(tmp_path, {"gpu-1": "my_team: search"})


def test_every_host_is_validated_whatever_the_limit(tmp_path: Path) -> None:
    # a typo on a host outside --limit is still a typo: the whole file loads strictly
    assert "ollama_verison" in load_error(tmp_path, {"cpu-1": "ollama_verison: 0.12.0"})


def test_limit_that_names_nothing_is_refused(tmp_path: Path) -> None:
    inventory = fleet(tmp_path)

    assert plan_error(inventory, tmp_path, limit=("gpu-1,gpu-9",)) == (
        f"--limit gpu-9: no host or group matches in {inventory.path}; did you mean gpu-2?"
    )


def test_unknown_role_is_refused_listing_the_roles(tmp_path: Path) -> None:
    assert plan_error(fleet(tmp_path), tmp_path, roles=("gpu,nginx",)) == (
        "--roles: unknown role 'nginx'; roles: gpu, ollama, models, caddy, firewall, services"
    )


def test_missing_artifact_names_the_file_it_looked_for(tmp_path: Path) -> None:
    inventory = fleet(tmp_path, {"gpu-1": "ollama_artifact: dist/ollama.tgz"})

    assert plan_error(inventory, tmp_path) == (
        f"{inventory.path}: host gpu-1: ollama_artifact: no such file "
        f"'{tmp_path / 'dist' / 'ollama.tgz'}'"
    )


def test_artifact_that_does_not_match_its_pinned_sha256_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ollama.tgz").write_bytes(b"release")
    inventory = fleet(tmp_path, {"gpu-1": "ollama_artifact: ollama.tgz"})

    message = plan_error(inventory, tmp_path)

    assert message.startswith(f"{inventory.path}: host gpu-1: ollama_artifact ollama.tgz has")
    assert f"not ollama_sha256 {PINNED[:12]}" in message


def test_unreadable_certificate_file_is_named(tmp_path: Path) -> None:
    inventory = fleet(
        tmp_path, {"cpu-1": "caddy_tls: files; caddy_tls_cert_file: c.pem; caddy_tls_key_file: k"}
    )

    message = plan_error(inventory, tmp_path)

    assert message.startswith(f"{inventory.path}: host cpu-1: caddy_tls_cert_file: cannot read")
    assert str(tmp_path / "c.pem") in message


# -- what the plan carries to the hosts ----------------------------------------------------------


def test_roles_run_in_the_sites_order_whatever_the_order_asked(tmp_path: Path) -> None:
    chosen = plan(fleet(tmp_path), tmp_path, roles=("models,gpu", "firewall"))

    assert chosen.roles == ("gpu", "models", "firewall")
    assert chosen.spec["roles"] == ["gpu", "models", "firewall"]


def test_pushed_artifact_is_hashed_on_the_controller(tmp_path: Path) -> None:
    artifact = tmp_path / "ollama-linux-amd64.tgz"
    artifact.write_bytes(b"a release archive")
    digest = hashlib.sha256(b"a release archive").hexdigest()
    inventory = fleet(tmp_path, {"gpu-1": f"ollama_artifact: {artifact.name}; ollama_sha256: ''"})

    chosen = plan(inventory, tmp_path, limit=("gpu-1",), roles=("ollama",))

    (entry,) = chosen.spec["hosts"]
    assert entry["name"] == "gpu-1"
    assert entry["data"]["fleet_prepared"]["ollama"] == {
        "source": "artifact",
        "version": "0.12.0",
        "sha256": digest,
        "filename": artifact.name,
        "path": str(artifact),
        "url": "",
        "arches": {},
    }


def test_download_with_a_pinned_sha256_needs_no_network(tmp_path: Path) -> None:
    chosen = plan(fleet(tmp_path), tmp_path, roles=("ollama",), limit=("cpu-1",))

    prepared = chosen.spec["hosts"][0]["data"]["fleet_prepared"]["ollama"]
    assert prepared["url"] == (
        "https://github.com/ollama/ollama/releases/download/v0.12.0/ollama-linux-amd64.tgz"
    )
    assert prepared["sha256"] == PINNED


def test_certificate_key_is_decrypted_and_kept_out_of_output(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("CERT", encoding="utf-8")
    (tmp_path / "key.pem").write_text("ENCRYPTED KEY", encoding="utf-8")
    inventory = fleet(
        tmp_path,
        {"cpu-1": "caddy_tls: files; caddy_tls_cert_file: cert.pem; caddy_tls_key_file: key.pem"},
    )
    opened: list[Path] = []

    def decrypt(text: str, path: Path) -> str:
        opened.append(path)
        return "PRIVATE KEY" if text == "ENCRYPTED KEY" else text

    chosen = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("caddy",), limit=("cpu-1",), cache_dir=tmp_path),
        decrypt=decrypt,
    )

    prepared = chosen.spec["hosts"][0]["data"]["fleet_prepared"]
    assert prepared["caddy_key"] == "PRIVATE KEY"
    assert prepared["caddy_cert"] == "CERT"
    assert opened == [tmp_path / "cert.pem", tmp_path / "key.pem"]
    assert "PRIVATE KEY" in chosen.secrets
    assert "PRIVATE KEY" in chosen.spec["redact"]


def test_hosts_that_changed_and_have_a_url_are_checked(tmp_path: Path) -> None:
    chosen = plan(fleet(tmp_path), tmp_path)
    result = DeployResult(
        hosts=(
            HostOutcome(name="gpu-1", ops=5, changed=("ollama: systemd unit",)),
            HostOutcome(name="gpu-2", ops=5, changed=("ollama: systemd unit",)),  # no URL
            HostOutcome(name="cpu-1", ops=5),
        )
    )

    assert hosts_to_check(result, chosen, "changed") == ("gpu-1",)
    assert hosts_to_check(result, chosen, "all") == ("gpu-1", "cpu-1")
    assert hosts_to_check(result, chosen, "none") == ()
    dry = DeployResult(hosts=result.hosts, dry=True)
    assert hosts_to_check(dry, chosen, "all") == ()


# -- pure helpers --------------------------------------------------------------------------------

SUMS = """\
1111111111111111111111111111111111111111111111111111111111111111  ./ollama-darwin.tgz
ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD  ./ollama-linux-amd64.tgz
2222222222222222222222222222222222222222222222222222222222222222 *ollama-linux-arm64.tgz
3333333333333333333333333333333333333333333333333333333333333333  ollama-windows-amd64.zip
"""


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("ollama-linux-amd64.tgz", "abcdef" * 10 + "abcd"),
        ("ollama-linux-arm64.tgz", "2" * 64),
        ("ollama-windows-amd64.zip", "3" * 64),
        ("ollama-linux-amd64.tgz.sig", None),
        ("linux-amd64.tgz", None),
    ],
)
def test_sha256_from_sums_finds_the_files_line(filename: str, expected: str | None) -> None:
    assert sha256_from_sums(SUMS, filename) == expected


def release_vars(**values: Any) -> dict[str, Any]:
    return resolved(values, "ollama")


def test_release_sha256_is_read_from_the_releases_sums(tmp_path: Path) -> None:
    asked: list[str] = []

    def fetch(url: str) -> str:
        asked.append(url)
        return SUMS

    release = resolve_release(
        release_vars(ollama_version="0.12.3", ollama_download_base="https://mirror.example/ol/"),
        where="inv.yml: host a",
        inventory_dir=tmp_path,
        cache_dir=tmp_path,
        fetch=fetch,
    )

    assert asked == ["https://mirror.example/ol/v0.12.3/sha256sum.txt"]
    assert release.sha256 == "abcdef" * 10 + "abcd"
    assert release.url == "https://mirror.example/ol/v0.12.3/ollama-linux-amd64.tgz"


def test_release_missing_from_the_sums_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"^inv.yml: host a: .*/v0.12.0/sha256sum.txt lists no"):
        resolve_release(
            release_vars(),
            where="inv.yml: host a",
            inventory_dir=tmp_path,
            cache_dir=tmp_path,
            fetch=lambda url: "",
        )


def test_unreachable_sums_are_an_error_naming_the_url(tmp_path: Path) -> None:
    def fetch(url: str) -> str:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(FleetError, match=r"cannot read https://.*/sha256sum.txt: connection"):
        resolve_release(
            release_vars(),
            where="inv.yml: host a",
            inventory_dir=tmp_path,
            cache_dir=tmp_path,
            fetch=fetch,
        )


def test_a_dry_run_reads_no_checksum_from_the_internet(tmp_path: Path) -> None:
    def fetch(url: str) -> str:
        raise AssertionError(f"a dry run fetched {url}")

    release = resolve_release(
        release_vars(ollama_version="0.12.3"),
        where="inv.yml: host a",
        inventory_dir=tmp_path,
        cache_dir=tmp_path,
        fetch=fetch,
        offline=True,
    )

    assert release.sha256 == ""  # the ollama role plans the download "checksum read on apply"
    assert release.url.endswith("/v0.12.3/ollama-linux-amd64.tgz")
    assert {files["sha256"] for files in release.arches.values()} == {""}


def test_a_pinned_checksum_stays_pinned_in_a_dry_run(tmp_path: Path) -> None:
    release = resolve_release(
        release_vars(ollama_sha256="ab" * 32),
        where="inv.yml: host a",
        inventory_dir=tmp_path,
        cache_dir=tmp_path,
        offline=True,
    )

    assert release.sha256 == "ab" * 32


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ((), ["gpu-1", "gpu-2", "cpu-1"]),
        (("cpu-1",), ["cpu-1"]),
        (("gpu",), ["gpu-1", "gpu-2"]),
        (("cpu-1,gpu-2",), ["gpu-2", "cpu-1"]),  # the inventory's order
        (("gpu", "gpu-1"), ["gpu-1", "gpu-2"]),  # once each
        ((" , ",), ["gpu-1", "gpu-2", "cpu-1"]),
    ],
)
def test_select_hosts_by_host_or_group(
    tmp_path: Path, limit: tuple[str, ...], expected: list[str]
) -> None:
    assert [h.name for h in select_hosts(fleet(tmp_path), limit)] == expected


def test_redactor_replaces_the_longest_secret_first() -> None:
    redact = redactor(["sk-secret", "sk-secret-123", ""])

    assert redact("key sk-secret-123 and sk-secret.") == "key *** and ***."
    assert redact("nothing secret") == "nothing secret"


def test_a_missing_ssh_key_is_named_at_its_line_before_any_connection(tmp_path: Path) -> None:
    inventory = fleet(tmp_path, {"gpu-2": f"ssh_key: {tmp_path / 'id_nope'}"})
    path = tmp_path / "inventory.yml"

    assert plan_error(inventory, tmp_path) == (
        f"{path}:{line_of(path, 'ssh_key')}: ssh_key: no such file: "
        f"'{tmp_path / 'id_nope'}' (host gpu-2)"
    )


def test_an_existing_ssh_key_passes(tmp_path: Path) -> None:
    (tmp_path / "id_ed25519").write_text("a key\n")
    inventory = fleet(tmp_path, {"gpu-2": f"ssh_key: {tmp_path / 'id_ed25519'}"})

    assert [h.name for h in plan(inventory, tmp_path).hosts] == ["gpu-1", "gpu-2", "cpu-1"]


def test_the_services_bundle_finds_the_checkout_it_runs_from() -> None:
    # the wheel is built from here: a module moved one folder deeper must not lose it
    from ollama_fleet.controller.bundle import project_root

    assert project_root() == Path(__file__).resolve().parents[1]


def _wheel(folder: Path, name: str, requires: list[str]) -> None:
    import zipfile

    project, version = name.split("-")[:2]
    with zipfile.ZipFile(folder / name, "w") as archive:
        lines = ["Metadata-Version: 2.1", f"Name: {project}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        archive.writestr(f"{project}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")


def test_the_bundle_adds_what_only_a_hosts_patch_release_needs(tmp_path: Path) -> None:
    # pip download reads python_full_version off the controller's Python: redis 8 needs
    # async-timeout below 3.11.3 (Debian 12 has 3.11.2), which a 3.11.7 controller left out
    from ollama_fleet.controller.bundle import _has_wheel, patch_requirements

    _wheel(tmp_path, "redis-8.1.0-py3-none-any.whl", [
        "async-timeout>=4.0.3; python_full_version < '3.11.3'",
        "cryptography>=36.0.1; extra == 'ocsp'",
        "hiredis>=3.2.0; extra == 'hiredis'",
    ])  # fmt: skip
    _wheel(tmp_path, "cryptography-50.0.2-cp311-abi3-manylinux2014_x86_64.whl", [
        "typing-extensions>=4.13.2 ; python_full_version < '3.11'",
        "cffi>=2.0.0 ; platform_python_implementation != 'PyPy'",
    ])  # fmt: skip
    assert patch_requirements(tmp_path, "3.11.0") == ["async-timeout>=4.0.3"]
    assert sorted(patch_requirements(tmp_path, "3.10.0")) == [
        "async-timeout>=4.0.3",
        "typing-extensions>=4.13.2",
    ]
    assert patch_requirements(tmp_path, "3.12.0") == []
    assert _has_wheel(tmp_path, "Redis>=5") and not _has_wheel(tmp_path, "async_timeout")
