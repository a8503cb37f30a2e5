"""The one-snapshot check that lets converged roles skip their operations."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from ollama_fleet.deploys.converge import (
    DirWant,
    Want,
    drift,
    merged,
    parse_snapshot,
    snapshot_script,
)

MODELS_JSON = '{"models": [{"name": "llama3.2:1b"}, {"name": "extra:latest"}]}'


def converged_want() -> Want:
    want = Want(
        packages={"caddy"},
        services={"caddy"},
        users={"ollama": {"render", "video"}},
        dirs={"/var/models": DirWant(mode="755", user="ollama", group="ollama")},
        lines={"/opt/ollama/RELEASE": "0.12.0 sha256:abc"},
        models_url="http://127.0.0.1:11434",
        models=("llama3.2:1b",),
    )
    want.file("/etc/caddy/Caddyfile", "site {}\n")
    return want


def snapshot_lines(**changes: str) -> list[str]:
    digest = hashlib.sha256(b"site {}\n").hexdigest()
    lines = {
        "sha": f"sha {digest}  /etc/caddy/Caddyfile",
        "meta_file": "meta 644 root root /etc/caddy/Caddyfile",
        "meta_dir": "meta 755 ollama ollama /var/models",
        "line": "line /opt/ollama/RELEASE 0.12.0 sha256:abc",
        "pkg": "pkg ii  caddy",
        "svc_id": "svc Id=caddy.service",
        "svc_enabled": "svc UnitFileState=enabled",
        "svc_active": "svc ActiveState=active",
        "user": "user ollama ollama render video",
        "tags": f"tags {MODELS_JSON}",
    }
    lines.update(changes)
    return [line for line in lines.values() if line]


def test_a_host_in_the_wanted_state_has_no_drift() -> None:
    assert drift(converged_want(), parse_snapshot(snapshot_lines())) == []


def test_each_kind_of_difference_is_named() -> None:
    cases = {
        "sha": "/etc/caddy/Caddyfile: content",
        "meta_file": "/etc/caddy/Caddyfile: mode or owner",
        "meta_dir": "/var/models: missing, or its mode or owner",
        "line": "/opt/ollama/RELEASE: another release",
        "pkg": "package caddy",
        "svc_active": "service caddy.service: not enabled and running",
        "user": "user ollama",
        "tags": "Ollama's model list",
    }
    for key, expected in cases.items():
        state = parse_snapshot(snapshot_lines(**{key: ""}))
        assert drift(converged_want(), state) == [expected], key


def test_a_changed_mode_a_stopped_service_and_a_missing_group_are_drift() -> None:
    state = parse_snapshot(
        snapshot_lines(
            meta_file="meta 600 root root /etc/caddy/Caddyfile",
            svc_active="svc ActiveState=failed",
            user="user ollama ollama video",
            pkg="pkg rc  caddy",
        )
    )
    assert drift(converged_want(), state) == [
        "/etc/caddy/Caddyfile: mode or owner",
        "package caddy",
        "service caddy.service: not enabled and running",
        "user ollama",
    ]


def test_models_missing_or_unwanted_with_prune() -> None:
    want = converged_want()
    want.models = ("llama3.2:1b", "qwen2.5:0.5b")
    want.prune = True
    assert drift(want, parse_snapshot(snapshot_lines())) == [
        "model qwen2.5:0.5b missing",
        "model extra:latest not required",
    ]


def test_merged_covers_every_want() -> None:
    other = Want(packages={"nftables"}, services={"nftables.service"})
    other.file("/etc/nftables.conf", "x", mode="755")
    args = merged([converged_want(), other])
    assert args["files"] == ["/etc/caddy/Caddyfile", "/etc/nftables.conf"]
    assert args["packages"] == ["caddy", "nftables"]
    assert args["services"] == ["caddy", "nftables.service"]
    assert args["models_url"] == "http://127.0.0.1:11434"


def test_the_script_reads_real_files_and_skips_missing_ones(tmp_path: Path) -> None:
    present = tmp_path / "with space.conf"
    present.write_text("site {}\n")
    present.chmod(0o640)
    marker = tmp_path / "RELEASE"
    marker.write_text("0.12.0 sha256:abc\nsecond line\n")
    missing = tmp_path / "missing.conf"
    script = snapshot_script(
        [str(present), str(missing)],
        [str(tmp_path)],
        [str(marker), str(missing)],
        [],
        [],
        [],
        None,
    )
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    state = parse_snapshot(output.stdout.splitlines())

    want = Want(lines={str(marker): "0.12.0 sha256:abc"})
    want.file(str(present), "site {}\n", mode="640")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    want.files[str(present)] = want.files[str(present)].__class__(
        sha256=want.files[str(present)].sha256, mode="640", user=user, group=group
    )
    assert drift(want, state) == []
    assert str(missing) not in state["sha"] and str(missing) not in state["lines"]
