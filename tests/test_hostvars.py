"""Role variables: what an inventory may put where a shell, a unit file or a Caddyfile reads it.

Every string variable that reaches a command line or a config file on a host passes an
allow-list on the controller, before any SSH: shell syntax in any of them is a one-line refusal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet import hostvars, render
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import InventoryError, load_inventory

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
        "monitor_slack_url",  # http(s) URLs, written into monitor.yml by yaml.safe_dump
        "monitor_alertmanager_url",
        "monitor_address",  # an IP literal (varchecks)
        "monitor_intervals",  # check names to durations (varchecks), into monitor.yml
        "gateway_api_keys",
        "gateway_nodes",  # names or {name, url...} (varchecks), resolved, into gateway.yml
        "gateway_strategy",  # one of the gateway's strategies
        "gateway_limits",  # {rpm, tpm}: whole numbers (varchecks), into gateway.yml
        "gateway_queue_timeout",  # a duration (varchecks), into gateway.yml
        "gateway_redis_on_error",  # open or closed, into gateway.yml
        "gateway_database_url",  # URLs (store_urls), into gateway.yml by yaml.safe_dump
        "gateway_redis_url",
        "caddy_tls",
        "caddy_source",
        "nvidia_driver_source",
        "nvidia_kernel_modules",
    }
    roles = [v for v in hostvars.VARS if v.role in hostvars.ROLES]  # what the deploy renders
    strings = {v.name for v in roles if isinstance(v.default, str | list | dict)}
    strings -= {v.name for v in hostvars.VARS if v.role == "firewall"}  # ports and CIDRs
    assert strings - controller_or_validated - set(SHELL_FACING) == set()


GATEWAY = {"gateway_enabled": True, "gateway_api_keys": ["sk-user-0123456789"]}


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"gateway_enabled": True}, "gateway_enabled: true, but gateway_api_keys is empty"),
        (
            {**GATEWAY, "ollama_enabled": False},
            "gateway_enabled: true on a host without Ollama, but gateway_nodes is empty",
        ),
        (
            {**GATEWAY, "services_enabled": False},
            "gateway_enabled: true, but services_enabled is false",
        ),
        (
            {"gateway_enabled": True, "gateway_api_keys": ["sha256:" + "a" * 64]},
            "gateway_enabled: true, but the host's self-check has no key to go through it",
        ),
        (
            {
                "gateway_enabled": True,
                "gateway_api_keys": [{"key": "sk-ro-0123", "role": "readonly"}],
            },
            "the host's self-check has no key",
        ),
        (
            {**GATEWAY, "caddy_extra_directives": "basic_auth {\n\tbob hash\n}"},
            "caddy_extra_directives: basicauth takes the Authorization header",
        ),
        (
            {**GATEWAY, "gateway_port": 11434},
            "gateway_port: 11434 is Ollama's port here (ollama_host 127.0.0.1:11434)",
        ),
        (
            {**GATEWAY, "monitor_enabled": True, "monitor_port": 8080},
            "gateway_port: 8080 is the monitor's port here (monitor_port)",
        ),
    ],
)
def test_a_gateway_that_would_be_open_or_unreachable_is_refused(
    values: dict[str, Any], problem: str
) -> None:
    assert problem in refusal(values)


def test_a_gateway_with_keys_and_a_key_for_its_self_check_passes() -> None:
    hostvars.validate(GATEWAY, where="inv.yml")
    hashed = {"gateway_enabled": True, "gateway_api_keys": ["sha256:" + "a" * 64]}
    hostvars.validate({**hashed, "api_key": "sk-check"}, where="inv.yml")
    # a dedicated gateway host has no self-check: hashes alone are enough there
    hostvars.validate({**hashed, "ollama_enabled": False, "gateway_nodes": ["gpu"]}, where="x")


def test_a_gateway_port_is_free_where_ollama_or_the_monitor_do_not_run_on_it() -> None:
    hostvars.validate({**GATEWAY, "monitor_port": 8080}, where="inv.yml")  # no monitor here
    dedicated = {**GATEWAY, "ollama_enabled": False, "gateway_nodes": ["gpu"]}
    hostvars.validate({**dedicated, "gateway_port": 11434}, where="inv.yml")


def test_caddy_runs_on_a_gateway_host_without_ollama() -> None:
    gateway_host = {**GATEWAY, "ollama_enabled": False, "gateway_nodes": ["gpu"]}
    hostvars.validate({**gateway_host, "caddy_enabled": True}, where="inv.yml")
    assert hostvars.enabled(gateway_host, "caddy")
    assert not hostvars.enabled(gateway_host, "models")
    assert not hostvars.enabled({**gateway_host, "services_enabled": False}, "caddy")


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ([{"name": "a", "kye": "x"}], "key 1: unknown field 'kye'; did you mean key?"),
        ([{"name": "a"}], "key 1: no key"),
        ([{"key": "x", "role": "root"}], "key 1: role: expected one of admin, user, readonly"),
        ([{"key": "x", "models": "llama3.2"}], "key 1: models: expected a list"),
        ([{"key": "x", "rpm": 0}], "key 1: rpm: expected a whole number >= 1"),
        ([{"key": "x", "expires": "next year"}], "key 1: expires: expected a date (2027-01-01)"),
        ([{"key": "x", "name": "bad name"}], "key 1: name: 'bad name' is not a name"),
        (["sk-a", {"key": "x", "name": "key-1"}], "key 2: name 'key-1' is given twice"),
        (["sk-same-1", {"name": "b", "key": "sk-same-1"}], "key 2: same sha256 as key 1"),
        (
            ["sha256:" + "ab" * 32, "sha256:" + "AB" * 32],
            "key 2: same sha256 as key 1 (a key is given twice)",
        ),
        (["ab" * 32], "key 1: 64 hex digits: write it as sha256:HEX if it is a hash"),
    ],
)
def test_gateway_key_mappings_are_checked_field_by_field(keys: list[Any], problem: str) -> None:
    message = refusal({"gateway_api_keys": keys})
    assert "not shown: it is a secret" in message
    assert problem in message
    assert "sk-same-1" not in message
    assert "ab" * 32 not in message.lower()


def test_a_sha256_key_in_upper_case_hex_is_taken_as_its_hash() -> None:
    hostvars.validate({"gateway_api_keys": ["sha256:" + "AB" * 32]}, where="inv.yml")
    config = render.render_gateway_config(
        hostvars.resolved({"gateway_api_keys": ["sha256:" + "AB" * 32]}, "services"),
        ollama_host="127.0.0.1:11434",
    )
    assert yaml.safe_load(config)["keys"][0]["sha256"] == "ab" * 32
    assert hostvars.self_check_key(None, ["sha256:" + "AB" * 32]) is None


def test_the_self_check_prefers_a_user_key_to_an_admin_key() -> None:
    keys = [{"key": "sk-admin-1", "role": "admin"}, {"key": "sk-user-1"}]
    assert hostvars.self_check_key(None, keys) == "sk-user-1"
    assert hostvars.self_check_key(None, keys[:1]) == "sk-admin-1"
    assert hostvars.self_check_key("sk-check", keys) == "sk-check"


@pytest.mark.parametrize(
    ("nodes", "problem"),
    [
        ("gpu", "gateway_nodes: expected a list of host or group names"),
        (["gpu 1"], "node 1: 'gpu 1' is not a host or group name"),
        ([{"name": "n", "url": "10.0.0.1:11434"}], "node 1: url: expected http(s)://HOST:PORT"),
        ([{"name": "n", "url": "http://h:1/api"}], "node 1: url: expected http(s)://HOST:PORT"),
        ([{"name": "n", "url": "http://h:1", "wieght": 2}], "did you mean weight?"),
        ([{"name": "n", "url": "http://h:1", "queue": -1}], "node 1: queue: expected a whole"),
        (
            [{"name": "n", "url": "http://h:1"}, {"name": "n", "url": "http://g:1"}],
            "node 2: name 'n' is given twice",
        ),
    ],
)
def test_gateway_nodes_are_names_or_node_mappings(nodes: Any, problem: str) -> None:
    assert problem in refusal({"gateway_nodes": nodes})


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"gateway_limits": {"rpm": "fast"}}, "gateway_limits: rpm: expected a whole number"),
        ({"gateway_limits": {"rps": 1}}, "unknown field 'rps'; did you mean rpm?"),
        ({"gateway_strategy": "fastest"}, "expected one of least-connections, round-robin"),
        ({"gateway_queue_timeout": "30"}, "'30' is not a duration such as 30s"),
        ({"gateway_node_address": "10.0.0.1; rm"}, "is neither an IP address nor a host name"),
    ],
)
def test_the_gateways_other_variables_are_checked(values: dict[str, Any], problem: str) -> None:
    assert problem in refusal(values)


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


# -- the rules rendering used to apply: now in the validation step, before anything renders ------

# (values, the refusal's text after "inv.yml: host gpu-1: "): each was refused by render.py.
REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"ollama_extra_env": {"OLLAMA_HOST": "0.0.0.0:1"}},
        "ollama_extra_env: invalid value (not shown: it is a secret); "
        "OLLAMA_HOST is set by ollama_host; use that",
    ),
    (
        {"ollama_extra_env": {"NOTE": "line\nExecStartPre=/bin/sh"}},
        "ollama_extra_env: invalid value (not shown: it is a secret); NOTE",
    ),
    ({"ollama_extra_env": {"lower": "x"}}, "ollama_extra_env: invalid value (not shown"),
    ({"ollama_models_dir": "models"}, "ollama_models_dir: 'models' is not an absolute path"),
    ({"ollama_models_dir": "/srv/models\n[Service]"}, "ollama_models_dir: '/srv/models\\n"),
    ({"ollama_models_dir": "/srv/two words"}, "ollama_models_dir: '/srv/two words' is not"),
    ({"ollama_models_dir": "/srv/../up"}, "ollama_models_dir: '/srv/../up' has a `..`"),
    (
        {"ollama_origins": ["https://a.example,https://b.example"]},
        "ollama_origins: 'https://a.example,https://b.example' is not one origin",
    ),
    ({"ollama_host": "localhost"}, "ollama_host: 'localhost' is not HOST:PORT"),
    ({"ollama_keep_alive": "forever"}, "ollama_keep_alive: 'forever' is not a duration"),
    ({"ollama_num_parallel": -1}, "ollama_num_parallel: expected a whole number >= 0, got -1"),
    ({"ollama_flash_attention": "yes"}, "ollama_flash_attention: expected true or false"),
    (
        {"caddy_site_names": ["llm.example.com evil.example"]},
        "caddy_site_names: 'llm.example.com evil.example' is not a host name",
    ),
    ({"caddy_site_names": ["llm.example.com{"]}, "caddy_site_names: 'llm.example.com{' is not"),
    ({"caddy_tls": "acme"}, "caddy_tls: acme, but caddy_acme_email is not set"),
    (
        {"caddy_tls": "acme", "caddy_acme_email": "ops@example.com\n}"},
        "caddy_acme_email: 'ops@example.com\\n}' is not an e-mail address",
    ),
    ({"caddy_tls": "files"}, "caddy_tls: files, but caddy_tls_cert_file is not set"),
    ({"caddy_response_timeout": "-1"}, "caddy_response_timeout: '-1' is negative"),
    ({"caddy_response_timeout": "ten minutes"}, "caddy_response_timeout: 'ten minutes' is not"),
    ({"caddy_hsts": "no"}, "caddy_hsts: expected true or false, got 'no'"),
    # Caddy 2.6 takes a site block left open at the end of the file without a word.
    (
        {"caddy_extra_directives": "respond /x 200 {"},
        "caddy_extra_directives: a { is never closed; its braces must balance",
    ),
    (
        {"caddy_extra_directives": "}\nevil.example.com {"},
        "caddy_extra_directives: a } closes the site block; its braces must balance",
    ),
    ({"sshd_port": 0}, "sshd_port: "),
    ({"sshd_port": "22"}, "sshd_port: "),
    ({"firewall_allow_ollama": ["10.0.0.0/33"]}, "firewall_allow_ollama: '10.0.0.0/33' is not"),
    ({"firewall_allow_metrics": ["everyone"]}, "firewall_allow_metrics: 'everyone' is not"),
    ({"firewall_metrics_ports": [70000]}, "firewall_metrics_ports: "),
    ({"firewall_extra_tcp_ports": ["80; drop"]}, "firewall_extra_tcp_ports: "),
    ({"firewall_manage_forward": "yes"}, "firewall_manage_forward: expected true or false"),
    ({"fleet_check_interval": "soon"}, "fleet_check_interval: 'soon' is not a systemd time span"),
    ({"fleet_check_interval": "5min\nExecStart=/bin/sh"}, "fleet_check_interval: '5min\\n"),
    ({"fleet_check_interval": ""}, "fleet_check_interval: '' is not a systemd time span"),
    ({"fleet_check_interval": "5 min please"}, "fleet_check_interval: '5 min please' is not"),
    ({"fleet_venv": "venv"}, "fleet_venv: 'venv' is not an absolute path"),
    ({"fleet_venv": "/opt/ollama fleet"}, "fleet_venv: '/opt/ollama fleet' is not"),
    ({"fleet_venv": "/opt/%h/venv"}, "fleet_venv: '/opt/%h/venv' is not"),
    ({"fleet_venv": "/opt/\n"}, "fleet_venv: '/opt/\\n' is not"),
    (
        {"monitor_port": 443},
        "monitor_port: 443 needs privileges the service does not have; use >= 1024",
    ),
    (
        {"gateway_port": 443},
        "gateway_port: 443 needs privileges the service does not have; use >= 1024",
    ),
    (
        {"gateway_api_keys": ["sk-first", ""]},
        "gateway_api_keys: invalid value (not shown: it is a secret); "
        "key 2 is empty or has blanks around it",
    ),
    (
        {"gateway_api_keys": [" sk-padded"]},
        "gateway_api_keys: invalid value (not shown: it is a secret); "
        "key 1 is empty or has blanks around it",
    ),
    (
        {"gateway_api_keys": ["sk-first", 12345678]},
        "gateway_api_keys: invalid value (not shown: it is a secret); key 2: expected a string",
    ),
    (
        {"monitor_webhook_url": "hooks.example.com/secret-token"},
        "monitor_webhook_url: invalid value (not shown: it is a secret); expected an http(s) URL",
    ),
    (
        {"public_url": "https://gpu_1.example.com"},
        "public_url: its host name 'gpu_1.example.com' is not a site name Caddy can serve; "
        "set caddy_site_names",
    ),
]


@pytest.mark.parametrize(("values", "shown"), REFUSED)
def test_what_rendering_refused_is_refused_by_the_validation_step(
    values: dict[str, Any], shown: str
) -> None:
    message = refusal(values)
    assert message.startswith(f"inv.yml: host gpu-1: {shown}")
    assert "sk-" not in message and "12345678" not in message and "secret-token" not in message


def test_values_rendering_takes_pass_the_validation_step() -> None:
    hostvars.validate(
        {
            "caddy_extra_directives": 'header X-Note "{ not a block" # } neither\nrespond 200',
            "caddy_response_timeout": "600",
            "ollama_keep_alive": "-1",  # Ollama's "forever": only Caddy's timeout is never < 0
            "monitor_port": 1024,
            "monitor_webhook_url": "https://hooks.example.com/T0/B1?token=a:b%20c#frag&x='y'",
            "gateway_api_keys": ["sk-first", "key: with # yaml 'specials' \"too\""],
            "ollama_extra_env": {"OLLAMA_CONTEXT_LENGTH": 8192},
            "public_url": "https://gpu-1.example.com:8443",
        },
        where="inv.yml",
    )


def test_the_site_name_caddy_would_derive_must_be_one() -> None:
    bad = "inv.yml: host gpu_1: caddy_site_names: no site name: public_url is not set and the "
    with pytest.raises(ConfigError, match=re.escape(bad)):
        hostvars.validate({}, where="inv.yml: host gpu_1", host="gpu_1")
    for values in (
        {"caddy_site_names": ["gpu-1.example.com"]},
        {"public_url": "https://gpu-1.example.com"},
        {"caddy_enabled": False},
        {"ollama_enabled": False},
        {"caddy_site_names": ["llm.example.com"], "public_url": "https://gpu_1.example.com"},
        {"public_url": "https://10.0.0.5:8443"},  # an IP address is a site address too
        {"public_url": "https://[2001:db8::5]:8443"},
    ):
        hostvars.validate(values, where="inv.yml", host="gpu_1")
    hostvars.validate({}, where="inv.yml", host="gpu-1")


# -- the same rules, reported by the inventory loader at the line that sets the value ------------

# (the YAML of one variable of host gpu-1, the problem after "inv.yml:LINE: ")
AT_LINE: list[tuple[str, str]] = [
    (
        'caddy_extra_directives: "respond /x 200 {"',
        "caddy_extra_directives: a { is never closed; its braces must balance",
    ),
    (
        'caddy_extra_directives: "}\\nevil.example.com {"',
        "caddy_extra_directives: a } closes the site block; its braces must balance",
    ),
    ('caddy_response_timeout: "-1"', "caddy_response_timeout: '-1' is negative"),
    (
        "ollama_extra_env: {OLLAMA_ORIGINS: '*'}",
        "ollama_extra_env: invalid value (not shown: it is a secret); "
        "OLLAMA_ORIGINS is set by ollama_origins; use that",
    ),
    (
        'ollama_origins: ["https://a.example,https://b.example"]',
        "ollama_origins: 'https://a.example,https://b.example' is not one origin such as "
        "https://app.example.com",
    ),
    (
        "ollama_host: localhost",
        "ollama_host: 'localhost' is not HOST:PORT "
        "(a name, an IPv4 address or [IPv6], then a port)",
    ),
    (
        "fleet_check_interval: soon",
        "fleet_check_interval: 'soon' is not a systemd time span such as 5min or 1h 30min",
    ),
    (
        "fleet_venv: /opt/$X/venv",
        "fleet_venv: '/opt/$X/venv' is not an absolute path "
        "of letters, digits and . _ + @ / - only",
    ),
    ("caddy_acme_email: ops@example", "caddy_acme_email: 'ops@example' is not an e-mail address"),
    (
        "monitor_port: 443",
        "monitor_port: 443 needs privileges the service does not have; use >= 1024",
    ),
    (
        "gateway_port: 80",
        "gateway_port: 80 needs privileges the service does not have; use >= 1024",
    ),
    (
        'gateway_api_keys: ["sk-first", " sk-padded"]',
        "gateway_api_keys: invalid value (not shown: it is a secret); "
        "key 2 is empty or has blanks around it",
    ),
    (
        "monitor_webhook_url: hooks.example.com/secret-token",
        "monitor_webhook_url: invalid value (not shown: it is a secret); expected an http(s) URL",
    ),
    # rules across variables: named at the line of the value, with the hosts they hit
    ("caddy_tls: acme", "caddy_tls: acme, but caddy_acme_email is not set (host gpu-1)"),
    ("caddy_tls: files", "caddy_tls: files, but caddy_tls_cert_file is not set (host gpu-1)"),
    (
        "public_url: https://gpu_1.example.com",
        "public_url: its host name 'gpu_1.example.com' is not a site name Caddy can serve; "
        "set caddy_site_names (host gpu-1)",
    ),
]


@pytest.mark.parametrize(("line", "shown"), AT_LINE)
def test_the_loader_names_the_line_of_a_value_rendering_would_have_refused(
    tmp_path: Path, line: str, shown: str
) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(f"all:\n  hosts:\n    gpu-1:\n      ssh_port: 22\n      {line}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert [str(p) for p in info.value.problems][:1] == [f"{path}:5: {shown}"]
    assert "secret-token" not in str(info.value) and "sk-" not in str(info.value)
