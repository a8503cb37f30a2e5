"""targets_from_inventory and target_from_url: defaults, host variables and their errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet.checks.model import PublicAccess, RequiredModel, Target, TlsPolicy
from ollama_fleet.checks.targets import target_from_url, targets_from_inventory
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory

URL = "https://gpu-1.example.net"


def inventory_file(tmp_path: Path, hosts: dict[str, dict[str, Any] | None]) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}), encoding="utf-8")
    return path


def targets(tmp_path: Path, hosts: dict[str, dict[str, Any] | None]) -> tuple[Target, ...]:
    return targets_from_inventory(load_inventory(inventory_file(tmp_path, hosts)))


def one(tmp_path: Path, **hostvars: Any) -> Target:
    (target,) = targets(tmp_path, {"gpu-1": {"public_url": URL, **hostvars}})
    return target


def host_error(tmp_path: Path, key: str, **hostvars: Any) -> str:
    """The one-line error for host gpu-1; it names the file, the host and `key`."""
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": URL, **hostvars}})
    with pytest.raises(ConfigError) as info:
        targets_from_inventory(load_inventory(path))
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    assert "gpu-1" in message, message
    assert key in message, message
    return message


# --- defaults and values -------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    target = one(tmp_path)
    assert target.name == "gpu-1"
    assert target.url == URL
    assert target.closed_ports == (11434,)
    assert target.open_ports == ()
    assert target.required_models == ()
    assert target.chat_model is None
    assert target.public_access is PublicAccess.CLOSED  # a key is required unless declared
    assert target.check_write_endpoints is True
    assert target.api_key is None
    assert target.tls == TlsPolicy(warn_days=21, fail_days=3, ca_file=None, require_hsts=True)


def test_trailing_slash_is_dropped(tmp_path: Path) -> None:
    assert one(tmp_path, public_url=URL + "/").url == URL


def test_ollama_port_moves_the_closed_port(tmp_path: Path) -> None:
    assert one(tmp_path, ollama_port=11500).closed_ports == (11500,)


def test_explicit_ports_win(tmp_path: Path) -> None:
    target = one(tmp_path, ollama_port=11500, closed_ports=[11434, 22], open_ports=[443, 80])
    assert target.closed_ports == (11434, 22)
    assert target.open_ports == (443, 80)


def test_empty_closed_ports_list_checks_none(tmp_path: Path) -> None:
    assert one(tmp_path, closed_ports=[]).closed_ports == ()


def test_required_models_as_names_and_pinned_digests(tmp_path: Path) -> None:
    target = one(
        tmp_path,
        required_models=[
            "llama3.2:1b",
            " qwen2.5:0.5b ",
            {"name": "nomic-embed-text", "digest": "sha256:0a109f422b47"},
            {"name": "mistral:7b"},
        ],
    )
    assert target.required_models == (
        RequiredModel(name="llama3.2:1b"),
        RequiredModel(name="qwen2.5:0.5b"),
        RequiredModel(name="nomic-embed-text", digest="sha256:0a109f422b47"),
        RequiredModel(name="mistral:7b"),
    )
    assert target.model_for_chat == "llama3.2:1b"


def test_chat_model_overrides_the_first_required_model(tmp_path: Path) -> None:
    target = one(tmp_path, required_models=["llama3.2:1b"], chat_model="qwen2.5:0.5b")
    assert target.model_for_chat == "qwen2.5:0.5b"


def test_tls_and_auth_settings(tmp_path: Path) -> None:
    target = one(
        tmp_path,
        tls_warn_days=30,
        tls_fail_days=7,
        require_hsts=False,
        http_url="http://gpu-1.example.net/",
        public_access="open",
        check_write_endpoints=False,
        api_key="k-123",
    )
    assert target.tls.warn_days == 30
    assert target.tls.fail_days == 7
    assert target.tls.require_hsts is False
    assert target.tls.http_url == "http://gpu-1.example.net"
    assert target.public_access is PublicAccess.OPEN
    assert target.check_write_endpoints is False
    assert target.api_key == "k-123"


def test_public_access_error_says_what_is_allowed(tmp_path: Path) -> None:
    message = host_error(tmp_path, "public_access", public_access="public")
    assert message.endswith("public_access: expected 'closed' or 'open', got 'public'")


def test_auth_required_true_is_the_deprecated_spelling_of_closed(tmp_path: Path) -> None:
    assert one(tmp_path, auth_required=True).public_access is PublicAccess.CLOSED
    assert one(tmp_path, auth_required=True, public_access="closed").public_access is (
        PublicAccess.CLOSED
    )


def test_auth_required_false_no_longer_turns_the_check_off(tmp_path: Path) -> None:
    message = host_error(tmp_path, "auth_required", auth_required=False)
    assert "public_access: open" in message


def test_auth_required_contradicting_public_access_is_an_error(tmp_path: Path) -> None:
    message = host_error(tmp_path, "public_access", auth_required=True, public_access="open")
    assert "auth_required" in message


def test_public_access_from_group_vars(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(
        textwrap.dedent(
            """\
            all:
              children:
                gpu:
                  vars: {public_access: open}
                  hosts:
                    gpu-1: {public_url: https://gpu-1.example.net}
                    gpu-2: {public_url: https://gpu-2.example.net, public_access: closed}
            """
        )
    )
    access = {t.name: t.public_access for t in targets_from_inventory(load_inventory(path))}
    assert access == {"gpu-1": PublicAccess.OPEN, "gpu-2": PublicAccess.CLOSED}


def test_api_key_is_not_in_the_repr(tmp_path: Path) -> None:
    secret = "sk-do-not-print-me"
    target = one(tmp_path, api_key=secret)
    assert secret not in repr(target)
    assert secret not in repr(target_from_url(URL, api_key=secret))


def test_ca_file_is_resolved_next_to_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    ca = tmp_path / "pki" / "ca.pem"
    ca.write_text("not parsed here\n")
    path = tmp_path / "inventories" / "prod.yml"
    path.parent.mkdir()
    hostvars = {"public_url": URL, "tls_ca_file": "../pki/ca.pem"}
    path.write_text(yaml.safe_dump({"all": {"hosts": {"gpu-1": hostvars}}}))
    (target,) = targets_from_inventory(load_inventory(path))
    assert target.tls.ca_file == str(ca.resolve())


def test_absolute_ca_file_is_kept(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x\n")
    assert one(tmp_path, tls_ca_file=str(ca)).tls.ca_file == str(ca)


def test_missing_ca_file(tmp_path: Path) -> None:
    message = host_error(tmp_path, "tls_ca_file", tls_ca_file="missing-ca.pem")
    assert str(tmp_path / "missing-ca.pem") in message


def test_hosts_without_public_url_are_skipped(tmp_path: Path) -> None:
    found = targets(
        tmp_path,
        {
            "bastion": None,
            "gpu-1": {"public_url": URL},
            "builder": {"ollama_port": 11434},
            "gpu-2": {"public_url": "http://10.0.0.2:8080"},
        },
    )
    assert [(t.name, t.url) for t in found] == [("gpu-1", URL), ("gpu-2", "http://10.0.0.2:8080")]


def test_no_host_with_public_url(tmp_path: Path) -> None:
    path = inventory_file(tmp_path, {"bastion": None, "builder": {"ollama_port": 11434}})
    with pytest.raises(ConfigError, match="no host has a public_url") as info:
        targets_from_inventory(load_inventory(path))
    assert str(path) in str(info.value)


def test_public_url_from_group_vars(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(
        textwrap.dedent(
            """
            all:
              vars:
                required_models: [llama3.2:1b]
              hosts:
                gpu-1:
                  public_url: https://gpu-1.example.net
            """
        )
    )
    (target,) = targets_from_inventory(load_inventory(path))
    assert target.required_models == (RequiredModel(name="llama3.2:1b"),)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("closed_ports", ["abc"]),
        ("closed_ports", [0]),
        ("closed_ports", [70000]),
        ("closed_ports", [True]),
        ("closed_ports", 11434),
        ("open_ports", [443, "https"]),
        ("ollama_port", 0),
        ("ollama_port", 70000),
        ("ollama_port", "11434"),
        ("tls_warn_days", "x"),
        ("tls_warn_days", 2.5),
        ("tls_fail_days", True),
        ("auth_required", "yes"),
        ("public_access", "public"),
        ("public_access", "Open "),
        ("public_access", True),
        ("public_access", ["open"]),
        ("check_write_endpoints", "no"),
        ("require_hsts", 1),
        ("api_key", 12345),
        ("chat_model", ["a"]),
        ("required_models", "llama3.2:1b"),
        ("required_models", [42]),
        ("required_models", [""]),
        ("required_models", [{"digest": "sha256:ab"}]),
        ("required_models", [{"name": "llama3.2:1b", "digest": 123}]),
        ("tls_ca_file", 5),
        ("http_url", "ftp://gpu-1.example.net"),
    ],
)
def test_wrong_value_names_host_and_key(tmp_path: Path, key: str, value: Any) -> None:
    host_error(tmp_path, key, **{key: value})


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "not a url",
        "https://",
        "http://gpu-1.example.net:0",
        "http://gpu-1.example.net:70000",
        "http://gpu-1.example.net:https",
    ],
)
def test_bad_public_url(tmp_path: Path, url: str) -> None:
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": url}})
    with pytest.raises(ConfigError) as info:
        targets_from_inventory(load_inventory(path))
    message = str(info.value)
    assert "\n" not in message
    assert "gpu-1" in message
    assert "public_url" in message
    assert str(path) in message


def test_public_url_that_is_not_a_string(tmp_path: Path) -> None:
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": 8080}})
    with pytest.raises(ConfigError, match="public_url"):
        targets_from_inventory(load_inventory(path))


def test_fail_days_above_warn_days_is_rejected(tmp_path: Path) -> None:
    host_error(tmp_path, "tls_fail_days", tls_warn_days=7, tls_fail_days=14)


def test_equal_fail_and_warn_days_are_allowed(tmp_path: Path) -> None:
    assert one(tmp_path, tls_warn_days=7, tls_fail_days=7).tls.fail_days == 7


FIELDS: dict[str, Callable[[Target], object]] = {
    "required_models": lambda t: t.required_models,
    "closed_ports": lambda t: t.closed_ports,
    "open_ports": lambda t: t.open_ports,
    "tls_warn_days": lambda t: t.tls.warn_days,
    "tls_fail_days": lambda t: t.tls.fail_days,
    "public_access": lambda t: t.public_access,
    "check_write_endpoints": lambda t: t.check_write_endpoints,
}


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_empty_yaml_value_is_not_a_crash(tmp_path: Path, key: str) -> None:
    # `closed_ports:` with nothing after it is YAML null. The user must get either the
    # default or a ConfigError naming the key, never a TypeError traceback.
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": URL, key: None}})
    try:
        (target,) = targets_from_inventory(load_inventory(path))
    except ConfigError as exc:
        assert key in str(exc)
    else:
        assert FIELDS[key](target) == FIELDS[key](Target(name="x", url=URL))


# --- target_from_url -----------------------------------------------------------------------


def test_target_from_url_defaults() -> None:
    target = target_from_url("https://gpu-1.example.net:8443/")
    assert target.name == "gpu-1.example.net:8443"
    assert target.url == "https://gpu-1.example.net:8443"
    assert target.closed_ports == (11434,)
    assert target.required_models == ()
    assert target.public_access is PublicAccess.CLOSED
    assert target.check_write_endpoints is True
    assert target.tls == TlsPolicy()


def test_target_from_url_options(tmp_path: Path) -> None:
    target = target_from_url(
        "http://127.0.0.1:11434",
        ca_file="/etc/ca.pem",
        required_models=["llama3.2:1b", "qwen2.5:0.5b"],
        api_key="k",
        public_access=PublicAccess.OPEN,
    )
    assert target.tls.ca_file == "/etc/ca.pem"
    assert [m.name for m in target.required_models] == ["llama3.2:1b", "qwen2.5:0.5b"]
    assert target.public_access is PublicAccess.OPEN
    assert target.api_key == "k"


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://x", "https://", "http://h:0", "http://h:99999"]
)
def test_target_from_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        target_from_url(url)
    message = str(info.value)
    assert "--url" in message
    assert "\n" not in message


def test_target_from_url_rejects_an_empty_model_name() -> None:
    with pytest.raises(ConfigError, match="--model"):
        target_from_url(URL, required_models=[" "])
