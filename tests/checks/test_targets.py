"""targets_from_inventory and target_from_url: defaults, host variables and their errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet.checks.model import (
    LatencyPolicy,
    PublicAccess,
    RequiredModel,
    Target,
    Threshold,
    TlsPolicy,
)
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
    """The one-line error for host gpu-1; it names the file, the line of `key`, and `key`."""
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": URL, **hostvars}})
    with pytest.raises(ConfigError) as info:
        targets_from_inventory(load_inventory(path))
    message = str(info.value)
    assert "\n" not in message, message
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if f"{key}:" in text)
    assert message.startswith(f"{path}:{line}: {key}: "), message
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
    assert message.startswith(f"{path}:4: public_url: ")


def test_public_url_that_is_not_a_string(tmp_path: Path) -> None:
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": 8080}})
    with pytest.raises(ConfigError, match="public_url"):
        targets_from_inventory(load_inventory(path))


def test_fail_days_above_warn_days_is_rejected(tmp_path: Path) -> None:
    host_error(tmp_path, "tls_fail_days", tls_warn_days=7, tls_fail_days=14)


def test_equal_fail_and_warn_days_are_allowed(tmp_path: Path) -> None:
    assert one(tmp_path, tls_warn_days=7, tls_fail_days=7).tls.fail_days == 7


FIELDS: dict[str, tuple[Callable[[Target], object], object]] = {
    "required_models": (lambda t: t.required_models, ()),
    "closed_ports": (lambda t: t.closed_ports, (11434,)),
    "open_ports": (lambda t: t.open_ports, ()),
    "tls_warn_days": (lambda t: t.tls.warn_days, 21),
    "tls_fail_days": (lambda t: t.tls.fail_days, 3),
    "public_access": (lambda t: t.public_access, PublicAccess.CLOSED),
    "check_write_endpoints": (lambda t: t.check_write_endpoints, True),
    "latency_thresholds": (lambda t: t.latency, LatencyPolicy()),
}


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_an_empty_value_means_the_default(tmp_path: Path, key: str) -> None:
    # `closed_ports:` with nothing after it is YAML null: the variable's default
    path = inventory_file(tmp_path, {"gpu-1": {"public_url": URL, key: None}})
    (target,) = targets_from_inventory(load_inventory(path))
    field, default = FIELDS[key]
    assert field(target) == default


# --- target_from_url -----------------------------------------------------------------------


def test_target_from_url_defaults() -> None:
    target = target_from_url("https://gpu-1.example.net:8443/")
    assert target.name == "gpu-1.example.net:8443"
    assert target.url == "https://gpu-1.example.net:8443"
    assert target.closed_ports == ()  # a bare URL checks no port it was not told to
    assert target.open_ports == ()
    assert target.required_models == ()
    assert target.public_access is PublicAccess.CLOSED
    assert target.check_write_endpoints is True
    assert target.tls == TlsPolicy()
    assert target.latency == LatencyPolicy()
    assert target.groups == ()


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


def test_target_from_url_checks_the_ports_and_latency_it_is_given() -> None:
    latency = LatencyPolicy(connect_ms=Threshold(warn=100, fail=200))
    target = target_from_url(URL, closed_ports=[11434, 9090], open_ports=[443], latency=latency)
    assert target.closed_ports == (11434, 9090)
    assert target.open_ports == (443,)
    assert target.latency is latency


def test_target_from_url_rejects_a_bad_port() -> None:
    with pytest.raises(ConfigError) as info:
        target_from_url(URL, closed_ports=[70000])
    assert str(info.value) == "--closed-port: 70000 is not a port (1-65535)"


# --- what the new schema brings --------------------------------------------------------------


def test_a_misspelt_public_url_is_an_error_not_a_host_that_drops_out(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  hosts:\n    gpu-1:\n      public_ulr: https://gpu-1.example.net\n")
    with pytest.raises(ConfigError) as info:
        targets_from_inventory(load_inventory(path))
    assert str(info.value) == f"{path}:4: public_ulr: unknown variable; did you mean public_url?"


def test_targets_carry_the_hosts_groups(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        "all:\n  children:\n    gpu:\n      children:\n        eu:\n          hosts:\n"
        f"            gpu-1: {{public_url: '{URL}'}}\n"
    )
    (target,) = targets_from_inventory(load_inventory(path))
    assert target.groups == ("all", "gpu", "eu")


def test_the_closed_port_follows_ollama_host(tmp_path: Path) -> None:
    assert one(tmp_path, ollama_host="0.0.0.0:11500").closed_ports == (11500,)
    assert one(tmp_path, ollama_host="0.0.0.0:11500", ollama_port=11600).closed_ports == (11600,)


def test_latency_thresholds_build_the_policy_with_defaults_for_the_rest(tmp_path: Path) -> None:
    target = one(tmp_path, latency_thresholds={"connect_ms": [50, 400], "tokens_per_s": [20, 8]})
    assert target.latency == LatencyPolicy(
        connect_ms=Threshold(warn=50, fail=400), tokens_per_s=Threshold(warn=20, fail=8)
    )
    assert target.latency.first_token_ms == LatencyPolicy().first_token_ms


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"conect_ms": [1, 2]}, "unknown key 'conect_ms'; did you mean connect_ms?"),
        ({"connect_ms": [300, 100]}, "connect_ms: a time warns before it fails, so warn <= fail"),
        ({"tokens_per_s": [1, 5]}, "tokens_per_s: a rate warns before it fails, so warn >= fail"),
        ({"first_byte_ms": [0, 100]}, "first_byte_ms: the levels must be above 0"),
        ({"first_token_ms": 500}, "first_token_ms: expected [warn, fail], two numbers"),
        ({"first_token_ms": [1, True]}, "first_token_ms: expected [warn, fail], two numbers"),
        ([500, 3000], "expected a mapping such as {connect_ms: [500, 3000]}"),
    ],
)
def test_bad_latency_thresholds_say_what_is_wrong(tmp_path: Path, value: Any, says: str) -> None:
    message = host_error(tmp_path, "latency_thresholds", latency_thresholds=value)
    assert says in message


def test_a_ca_file_that_is_missing_is_named_at_the_line_that_sets_it(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        "all:\n  vars:\n    tls_ca_file: pki/ca.pem\n  hosts:\n"
        f"    gpu-1: {{public_url: '{URL}'}}\n    gpu-2: {{public_url: '{URL}'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        targets_from_inventory(load_inventory(path))
    assert str(info.value).splitlines() == [
        f"{path}:3: tls_ca_file: no such file '{tmp_path / 'pki' / 'ca.pem'}' (host gpu-1)",
        f"{path}:3: tls_ca_file: no such file '{tmp_path / 'pki' / 'ca.pem'}' (host gpu-2)",
    ]


def test_the_same_model_twice_in_two_spellings_is_an_error(tmp_path: Path) -> None:
    message = host_error(
        tmp_path, "required_models", required_models=["Llama3.2", "llama3.2:latest"]
    )
    assert message.endswith("'Llama3.2' and 'llama3.2:latest' are the same model (listed twice)")
