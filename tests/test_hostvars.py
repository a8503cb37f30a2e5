"""Role variables: what an inventory may put where a shell, a unit file or a Caddyfile reads it.

Every string variable that reaches a command line or a config file on a host passes an
allow-list on the controller, before any SSH: shell syntax in any of them is a one-line refusal.
"""

from __future__ import annotations

from typing import Any

import pytest

from ollama_fleet import hostvars
from ollama_fleet.errors import ConfigError

HOSTILE = ["$(reboot)", "`reboot`", "x; reboot", "x\nreboot", "x && reboot", "x | sh", "x'y", 'x"y']

# Each variable whose value lands in a shell command or a file on the host, with a good value
# and how a hostile text is put into it.
SHELL_FACING: dict[str, tuple[Any, Any]] = {
    "ollama_models_dir": ("/data/ollama/models", lambda bad: f"/data/{bad}"),
    "fleet_venv": ("/opt/ollama-fleet", lambda bad: f"/opt/{bad}"),
    "ollama_host": ("127.0.0.1:11434", lambda bad: f"{bad}:11434"),
    "ollama_version": ("0.12.0", lambda bad: f"0.12.0-{bad}"),
    "ollama_download_base": ("https://mirror.example/ollama", lambda bad: f"https://m/{bad}"),
    "nvidia_driver_branch": ("580", lambda bad: f"580{bad}"),
    "required_models": (["llama3.2:1b"], lambda bad: [f"llama3.2:{bad}"]),
    "ollama_keep_alive": ("5m", lambda bad: f"5m{bad}"),
    "ollama_origins": (["https://app.example.com"], lambda bad: [f"https://a/{bad}"]),
    "ollama_extra_env": ({"OLLAMA_CONTEXT_LENGTH": 8192}, lambda bad: {f"A{bad}": "1"}),
    "caddy_site_names": (["llm.example.com"], lambda bad: [f"llm{bad}.example.com"]),
    "caddy_acme_email": ("ops@example.com", lambda bad: f"ops{bad}@example.com"),
    "fleet_check_interval": ("5min", lambda bad: f"5min{bad}"),
    "caddy_response_timeout": ("10m", lambda bad: f"10m{bad}"),
}


def refusal(values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        hostvars.validate(values, where="inv.yml: host gpu-1")
    return str(raised.value)


@pytest.mark.parametrize("name", SHELL_FACING)
def test_a_good_value_passes(name: str) -> None:
    hostvars.validate({name: SHELL_FACING[name][0]}, where="inv.yml: host gpu-1")


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("name", SHELL_FACING)
def test_shell_syntax_is_refused_in_one_line_naming_the_variable(name: str, bad: str) -> None:
    message = refusal({name: SHELL_FACING[name][1](bad)})
    assert message.startswith(f"inv.yml: host gpu-1: {name}")
    assert "\n" not in message


@pytest.mark.parametrize("bad", HOSTILE)
def test_extra_env_values_are_quoted_but_never_hold_a_newline(bad: str) -> None:
    values = {"ollama_extra_env": {"NOTE": bad}}
    if "\n" in bad:
        message = refusal(values)
        assert "\n" not in message and "reboot" not in message  # a secret is never echoed
    else:
        hostvars.validate(values, where="inv.yml")  # quoted for systemd by render


def test_every_string_variable_that_reaches_a_host_is_covered() -> None:
    # Strings that only name controller files, or are validated by the tool that reads them,
    # are the exceptions; any new string variable must be added to SHELL_FACING or here.
    controller_or_validated = {
        "ollama_artifact",
        "ollama_sha256",
        "caddy_tls_cert_file",
        "caddy_tls_key_file",
        "caddy_extra_directives",
        "monitor_webhook_url",
        "gateway_api_keys",
        "caddy_tls",
        "caddy_source",
        "nvidia_driver_source",
        "nvidia_kernel_modules",
    }
    roles = [v for v in hostvars.VARS if v.role in hostvars.ROLES]  # what the deploy renders
    strings = {v.name for v in roles if isinstance(v.default, str | list | dict)}
    strings -= {v.name for v in hostvars.VARS if v.role == "firewall"}  # ports and CIDRs
    assert strings - controller_or_validated - set(SHELL_FACING) == set()


@pytest.mark.parametrize("name", ["monitor_enabled", "gateway_enabled"])
def test_services_that_do_not_exist_yet_are_refused(name: str) -> None:
    assert "not part of this release yet" in refusal({name: True})


@pytest.mark.parametrize("name", ["models_enabled", "caddy_enabled"])
def test_a_role_that_needs_ollama_cannot_be_asked_for_without_it(name: str) -> None:
    message = refusal({"ollama_enabled": False, name: True})
    assert "needs Ollama on the same host" in message
    hostvars.validate({"ollama_enabled": False}, where="inv.yml")
    assert not hostvars.enabled({"ollama_enabled": False}, name.removesuffix("_enabled"))
    assert hostvars.enabled({"ollama_enabled": False}, "firewall")


def test_a_secret_value_is_never_quoted_in_a_refusal() -> None:
    message = refusal({"gateway_api_keys": "sk-live-0123456789abcdef"})
    assert "sk-live" not in message
    assert "not shown: it is a secret" in message


def test_a_misspelt_variable_suggests_the_right_name() -> None:
    assert refusal({"caddy_open_admin_endpoint": True}) == (
        "inv.yml: host gpu-1: caddy_open_admin_endpoint: unknown variable; "
        "did you mean caddy_open_admin_endpoints?"
    )


@pytest.mark.parametrize("path", ["/", "/usr", "/etc/", "/var/lib", "/home", "/tmp"])
@pytest.mark.parametrize("name", ["ollama_models_dir", "fleet_venv"])
def test_a_system_directory_is_never_handed_to_a_service(name: str, path: str) -> None:
    assert "is a system directory" in refusal({name: path})


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:11434",
        "http://127.0.0.1:11434",
        ":11434",
        "[::1]:11434",
        "0.0.0.0:11434",
        "gpu-1.internal:11434",
    ],
)
def test_ollama_host_takes_the_shapes_ollama_does(value: str) -> None:
    hostvars.validate({"ollama_host": value}, where="inv.yml")


@pytest.mark.parametrize(
    "model",
    [
        "llama3.2:1b",
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "registry.example.com:5000/team/model:v1",
        "qwen2.5",
        "library/mistral:7b",
    ],
)
def test_real_model_names_pass(model: str) -> None:
    hostvars.validate({"required_models": [model]}, where="inv.yml")


def test_every_group_has_a_table_and_every_variable_a_meaning() -> None:
    assert {v.role for v in hostvars.VARS} == set(hostvars.GROUPS)
    for group in hostvars.GROUPS:
        table = hostvars.markdown_table(group)
        assert table.startswith("| name | default | meaning |")
    assert "| `public_url` | — |" in hostvars.markdown_table("checks")
    assert all(v.meaning.strip() for v in hostvars.VARS)


def test_the_connection_variables_are_known_so_a_typo_is_caught() -> None:
    assert refusal({"ssh_prot": 22}) == (
        "inv.yml: host gpu-1: ssh_prot: unknown variable; did you mean ssh_port?"
    )
    hostvars.validate({"ssh_port": 2222, "ssh_user": "deploy", "_sudo": True}, where="inv.yml")


def test_the_operators_own_variables_start_with_x() -> None:
    hostvars.validate({"x_owner": "team-llm", "x_notes": ["anything", 1]}, where="inv.yml")
    assert "your own start with x_" in refusal({"zzzzqqqq": 1})


@pytest.mark.parametrize(
    "name", ["api_key", "ssh_password", "_sudo_password", "monitor_webhook_url"]
)
def test_a_secret_connection_or_check_value_is_never_quoted(name: str) -> None:
    message = refusal({name: "sk-live-0123\nsecret"})
    assert "sk-live" not in message
    assert message.endswith(
        "invalid value (not shown: it is a secret); holds a control character such as a newline"
    )


def test_an_ansible_connection_variable_names_this_tools_spelling() -> None:
    assert refusal({"ansible_host": "10.0.0.11"}) == (
        "inv.yml: host gpu-1: ansible_host: Ansible's name; here it is ssh_hostname"
    )
