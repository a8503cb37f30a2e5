"""Every file the roles leave on a host, walked with its mode: no secret is world-readable.

Each role declares the files it leaves (`want()`, the converge snapshot's input, which is what
the operations write). This walks them for a host whose every secret-bearing variable holds a
planted secret, with facts of a Debian 12 GPU host; an unknown fact fails the test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.host import Host
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.deb import DebArch

from ollama_fleet.deploys import site
from ollama_fleet.deploys.common import PREPARED_KEY
from ollama_fleet.deploys.converge import Want
from ollama_fleet.deploys.facts import NvidiaGpu, OsRelease

SECRETS = {
    "ollama_extra_env": "proxy-password-0123456789",
    "monitor_webhook_url": "https://hooks.example.test/T0/B0/webhook-secret-xyz",
    "gateway_api_keys": "sk-gateway-key-0123456789",
    "caddy_key": "-----BEGIN PRIVATE KEY-----\nMIIsecretkeymaterial\n-----END PRIVATE KEY-----\n",
}
FACTS: dict[type, Any] = {
    OsRelease: {"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"},
    DebArch: "amd64",
    NvidiaGpu: {"devices": ["01:00.0 0302: 10de:2330 (rev a1)"], "driver": "535.216.01"},
}
HOST_DATA = {
    "public_url": "https://gpu-1.example.test",
    "caddy_tls": "files",
    "caddy_tls_cert_file": "c.pem",
    "caddy_tls_key_file": "k.pem",
    "ollama_extra_env": {"HTTPS_PROXY": f"http://user:{SECRETS['ollama_extra_env']}@proxy:3128"},
    "monitor_webhook_url": SECRETS["monitor_webhook_url"],
    "gateway_api_keys": [SECRETS["gateway_api_keys"]],
    "required_models": ["llama3.2:1b"],
    PREPARED_KEY: {
        "ollama": {
            "source": "artifact",
            "version": "0.12.0",
            "sha256": "0" * 64,
            "filename": "ollama.tgz",
            "path": "/x",
            "url": "",
            "arches": {},
        },
        "bundle": {
            "path": "/b.tar",
            "filename": "b.tar",
            "sha256": "1" * 64,
            "wheel": "ollama_fleet-0.1.0-py3-none-any.whl",
            "requirements": [],
            "requires_python": ">=3.11",
        },
        "caddy_cert": "-----BEGIN CERTIFICATE-----\nMIIpublic\n-----END CERTIFICATE-----\n",
        "caddy_key": SECRETS["caddy_key"],
    },
}


def strict_fact(self: Host, cls: type, *args: Any, **kwargs: Any) -> Any:
    if cls not in FACTS:
        raise AssertionError(f"want() read a fact this test does not know: {cls.__name__}")
    return FACTS[cls]


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, tuple[str, str]]]:
    """{path: (content, mode)} of every file each role's want() declares."""
    files: dict[str, tuple[str, str]] = {}
    original = Want.file

    def record(
        self: Want,
        path: str,
        content: str,
        mode: str = "644",
        user: str = "root",
        group: str = "root",
    ) -> None:
        files[path] = (content, mode)
        original(self, path, content, mode, user, group)

    monkeypatch.setattr(Want, "file", record)
    monkeypatch.setattr(Host, "get_fact", strict_fact)
    state = State(
        inventory=Inventory((["@fake/gpu-1"], {}), all=(["@fake/gpu-1"], HOST_DATA)),
        config=Config(),
    )
    host = state.inventory.get_host("@fake/gpu-1")
    with ctx_state.use(state), ctx_host.use(host):
        for role, want in site.WANTS.items():
            assert want() is not None, role
    yield files


def holds_a_secret(content: str) -> bool:
    return any(secret in content for secret in SECRETS.values())


def test_no_file_that_holds_a_secret_is_world_readable(
    written: dict[str, tuple[str, str]],
) -> None:
    secret_files = {
        path: mode for path, (content, mode) in written.items() if holds_a_secret(content)
    }
    # the walk found them all: the drop-in, the TLS key and the services' configs
    assert {
        "/etc/systemd/system/ollama.service.d/ollama-fleet.conf",
        "/etc/caddy/tls/key.pem",
        "/etc/ollama-fleet/monitor.yml",
    } <= set(secret_files)
    for path, mode in secret_files.items():
        assert int(mode, 8) & 0o007 == 0, f"{path} is mode {mode}: others could read a secret"
    assert written["/etc/systemd/system/ollama.service.d/ollama-fleet.conf"][1] == "600"


def test_api_keys_reach_the_host_only_as_hashes(written: dict[str, tuple[str, str]]) -> None:
    gateway = written["/etc/ollama-fleet/gateway.yml"][0]
    key = SECRETS["gateway_api_keys"]
    assert key not in gateway
    assert hashlib.sha256(key.encode()).hexdigest() in gateway


def test_no_file_is_writable_by_others(written: dict[str, tuple[str, str]]) -> None:
    for path, (_, mode) in written.items():
        assert int(mode, 8) & 0o002 == 0, f"{path} is mode {mode}"


def test_a_gpu_hosts_unit_creates_the_uvm_device_privileged(
    written: dict[str, tuple[str, str]],
) -> None:
    unit = written["/etc/systemd/system/ollama.service"][0]
    assert "ExecStartPre=-+/usr/bin/nvidia-modprobe -u -c=0\n" in unit
    assert "NoNewPrivileges=yes" in unit
