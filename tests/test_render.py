"""The files rendered onto hosts: what an operator would see in them.

Rendering takes values that passed the validation step (their rules are tested in
test_hostvars.py); what it refuses itself are parameters its roles pass wrong (ValueError).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet import hostvars, render
from ollama_fleet.errors import ConfigError
from ollama_fleet.gateway.config import load_config
from ollama_fleet.gateway.settings import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_QUEUE,
    GatewayConfig,
    Role,
    Strategy,
)


def role(name: str, **values: Any) -> dict[str, Any]:
    return hostvars.resolved(values, name)


def role_bug(call: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the ValueError a role's wrong parameter gets: a bug, not user input."""
    with pytest.raises(ValueError) as caught:
        call(*args, **kwargs)
    assert not isinstance(caught.value, ConfigError)
    return str(caught.value)


def caddyfile(**values: Any) -> str:
    params: dict[str, Any] = {
        "site_names": ["llm.example.com"],
        "upstream": "127.0.0.1:11434",
        "upstream_is_ollama": True,
    }
    params.update({k: values.pop(k) for k in list(values) if not k.startswith("caddy_")})
    return render.render_caddyfile(role("caddy", **values), **params)


# -- systemd's reading of a value: extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) ---------

ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def systemd_words(text: str) -> list[str]:
    """Split a setting's value the way systemd does for Environment= and ReadWritePaths=."""
    words: list[str] = []
    word: list[str] | None = None
    quote = ""
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars)
            word = (word or []) + [ESCAPES.get(escaped, escaped)]
        elif quote:
            if char == quote:
                quote = ""
            else:
                word = (word or []) + [char]
        elif char in "\"'":
            quote, word = char, word or []
        elif char.isspace():
            if word is not None:
                words.append("".join(word))
            word = None
        else:
            word = (word or []) + [char]
    assert not quote, f"unbalanced quote in {text!r}"
    if word is not None:
        words.append("".join(word))
    return [unspecify(word) for word in words]


def unspecify(word: str) -> str:
    assert "%" not in word.replace("%%", ""), (
        f"a % that systemd would read as a specifier: {word!r}"
    )
    return word.replace("%%", "%")


def settings(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def environment(dropin: str) -> dict[str, str]:
    words = [word for line in settings(dropin, "Environment") for word in systemd_words(line)]
    return dict(word.split("=", 1) for word in words)


def test_systemd_words_reads_quotes_and_escapes_like_systemd() -> None:
    assert systemd_words(r'"A=b c" B=d\"e "F=100%%"') == ["A=b c", 'B=d"e', "F=100%"]


# -- ollama.service.d/ollama-fleet.conf ---------------------------------------------------------


def test_dropin_defaults_keep_ollama_on_loopback_with_its_model_path() -> None:
    env = environment(render.render_ollama_dropin(role("ollama")))
    assert env == {
        "OLLAMA_HOST": "127.0.0.1:11434",
        "OLLAMA_MODELS": "/usr/share/ollama/.ollama/models",
        "OLLAMA_KEEP_ALIVE": "5m",
        "OLLAMA_NUM_PARALLEL": "1",
        "OLLAMA_MAX_LOADED_MODELS": "0",
        "OLLAMA_MAX_QUEUE": "512",
    }


def test_dropin_is_a_service_section() -> None:
    dropin = render.render_ollama_dropin(role("ollama"))
    assert "[Service]" in dropin.splitlines()
    assert dropin.startswith("# Managed by ollama-fleet")


def test_dropin_sets_flash_attention_origins_and_extra_env_sorted_last() -> None:
    dropin = render.render_ollama_dropin(
        role(
            "ollama",
            ollama_flash_attention=True,
            ollama_origins=["https://app.example.com", "app://*"],
            ollama_extra_env={"OLLAMA_KV_CACHE_TYPE": "q8_0", "CUDA_VISIBLE_DEVICES": "0,1"},
        )
    )
    env = environment(dropin)
    assert env["OLLAMA_FLASH_ATTENTION"] == "1"
    assert env["OLLAMA_ORIGINS"] == "https://app.example.com,app://*"
    assert list(env)[-2:] == ["CUDA_VISIBLE_DEVICES", "OLLAMA_KV_CACHE_TYPE"]


@pytest.mark.parametrize(
    "value",
    [
        "two words",
        'a "quoted" word',
        "back\\slash and trailing\\",
        "100% sure, %n is no specifier",
        "$HOME ${PATH} stay literal",
        "it's; #not a comment",
        "ünïcödé",
    ],
)
def test_dropin_values_survive_systemd_quoting(value: str) -> None:
    dropin = render.render_ollama_dropin(role("ollama", ollama_extra_env={"NOTE": value}))
    env = environment(dropin)
    assert env["NOTE"] == value


def test_dropin_numbers_in_extra_env_are_written_as_numbers() -> None:
    dropin = render.render_ollama_dropin(
        role("ollama", ollama_extra_env={"OLLAMA_CONTEXT_LENGTH": 8192, "OLLAMA_X": 0.5})
    )
    env = environment(dropin)
    assert (env["OLLAMA_CONTEXT_LENGTH"], env["OLLAMA_X"]) == ("8192", "0.5")


def test_a_missing_variable_is_named_as_the_roles_bug() -> None:
    ollama_vars = role("ollama")
    del ollama_vars["ollama_max_queue"]
    assert role_bug(render.render_ollama_dropin, ollama_vars) == (
        "ollama_max_queue: missing (pass hostvars.resolved(...) for its role)"
    )


def test_a_newline_systemd_cannot_quote_is_refused_without_showing_the_value() -> None:
    dropin_vars = role("ollama", ollama_extra_env={"NOTE": "sk-secret\nExecStartPre=/bin/sh"})
    message = role_bug(render.render_ollama_dropin, dropin_vars)
    assert message == "ollama_extra_env: a value holds a control character such as a newline"


def test_rendering_does_not_validate_again_the_validation_step_did() -> None:
    # Values the schema refuses: rendering writes them as they are, the refusal is the loader's.
    refused = {"ollama_keep_alive": "forever", "ollama_num_parallel": -1}
    for name, value in refused.items():
        assert hostvars.value_problem(name, value)
    env = environment(render.render_ollama_dropin(role("ollama", **refused)))
    assert (env["OLLAMA_KEEP_ALIVE"], env["OLLAMA_NUM_PARALLEL"]) == ("forever", "-1")
    assert yaml.safe_load(gateway_config(gateway_port=443))["listen"] == "127.0.0.1:443"
    assert caddyfile(caddy_extra_directives="respond /x 200 {").endswith("\nrespond /x 200 {\n}\n")


# -- ollama.service -------------------------------------------------------------------------------


def test_ollama_unit_runs_ollama_serve_as_ollama_like_install_sh() -> None:
    unit = render.render_ollama_unit()
    assert settings(unit, "ExecStart") == ["/usr/local/bin/ollama serve"]
    for key, value in {
        "User": "ollama",
        "Group": "ollama",
        "Restart": "always",
        "RestartSec": "3",
        "After": "network-online.target",
        "Wants": "network-online.target",
        "WantedBy": "multi-user.target",
    }.items():
        assert settings(unit, key) == [value], key


def test_ollama_unit_is_hardened_but_leaves_the_gpu_devices_visible() -> None:
    unit = render.render_ollama_unit()
    assert settings(unit, "NoNewPrivileges") == ["yes"]
    assert settings(unit, "ProtectSystem") == ["full"]
    assert settings(unit, "ProtectHome") == ["read-only"]
    assert settings(unit, "PrivateTmp") == ["yes"]
    assert settings(unit, "PrivateDevices") == []
    assert systemd_words(settings(unit, "ReadWritePaths")[0]) == [
        "/usr/share/ollama",
        "/usr/share/ollama/.ollama/models",
    ]


@pytest.mark.parametrize("models_dir", ["/home/ai/models", "/root/models"])
def test_ollama_unit_with_models_under_a_home_does_not_hide_them(models_dir: str) -> None:
    unit = render.render_ollama_unit(models_dir=models_dir)
    assert settings(unit, "ProtectHome") == ["no"]
    assert models_dir in systemd_words(settings(unit, "ReadWritePaths")[0])


def test_ollama_unit_models_dir_with_a_space_is_one_writable_path() -> None:
    unit = render.render_ollama_unit(models_dir="/srv/big disk/models/")
    words = systemd_words(settings(unit, "ReadWritePaths")[0])
    assert words == ["/usr/share/ollama", "/srv/big disk/models"]


@pytest.mark.parametrize("binary", ["ollama", "/opt/my ollama/bin/ollama", "/opt/$X/ollama"])
def test_ollama_unit_refuses_a_binary_path_execstart_would_mangle(binary: str) -> None:
    assert role_bug(render.render_ollama_unit, binary=binary).startswith("binary:")


# -- Caddyfile ------------------------------------------------------------------------------------


def site_block(text: str) -> str:
    return text[text.index("llm.example.com") :]


def test_caddyfile_internal_tls_by_default() -> None:
    text = caddyfile()
    assert "\ttls internal\n" in site_block(text)
    assert "email" not in text


def test_caddyfile_acme_sets_the_account_email_and_no_tls_line() -> None:
    text = caddyfile(caddy_tls="acme", caddy_acme_email="ops@example.com")
    assert re.search(
        r"^\{\n\tadmin unix//run/caddy/admin.sock\n\temail ops@example\.com\n", text, re.MULTILINE
    )
    assert "\ttls" not in site_block(text)


def test_caddyfile_files_points_tls_at_the_host_paths() -> None:
    text = caddyfile(
        caddy_tls="files",
        caddy_tls_cert_file="ca/cert.pem",
        caddy_tls_key_file="ca/key.pem",
        cert_file="/etc/caddy/tls/llm.pem",
        key_file="/etc/caddy/tls/llm key.pem",
    )
    assert '\ttls /etc/caddy/tls/llm.pem "/etc/caddy/tls/llm key.pem"\n' in text


def test_caddyfile_serves_every_site_name_once_from_one_block() -> None:
    text = caddyfile(site_names=["llm.example.com", "gpu-1.example.com", "llm.example.com"])
    assert "\nllm.example.com, gpu-1.example.com {\n" in text
    assert text.count("reverse_proxy") == 1


@pytest.mark.parametrize("hsts", [True, False])
def test_caddyfile_security_headers_and_hsts_only_when_asked(hsts: bool) -> None:
    text = caddyfile(caddy_hsts=hsts)
    assert ("Strict-Transport-Security" in text) is hsts
    for header in ('X-Content-Type-Options "nosniff"', 'X-Frame-Options "DENY"', "-Server"):
        assert header in text
    assert "\timport security_headers\n" in site_block(text)


def test_caddyfile_streams_without_buffering_or_compression() -> None:
    text = caddyfile(caddy_response_timeout="15m")
    assert "\t\tflush_interval -1\n" in text
    assert "\t\t\tresponse_header_timeout 15m\n" in text
    assert "\t\t\tread_timeout 0\n" in text
    assert not re.search(r"^\s*encode\b", text, re.MULTILINE)


def test_caddyfile_logs_json_to_the_access_log() -> None:
    text = caddyfile(log_file="/var/log/caddy/llm.log")
    assert "\t\toutput file /var/log/caddy/llm.log\n\t\tformat json\n" in text


def test_caddyfile_rewrites_host_only_in_front_of_ollama() -> None:
    assert "header_up Host localhost:11434" in caddyfile()
    gateway = caddyfile(upstream="127.0.0.1:8080", upstream_is_ollama=False)
    assert "reverse_proxy 127.0.0.1:8080 {" in gateway
    assert "header_up" not in gateway


def test_caddyfile_keeps_the_gateways_metrics_on_the_host_but_streams_the_rest() -> None:
    gateway = caddyfile(upstream="127.0.0.1:8080", upstream_is_ollama=False)
    assert (
        "\t@gateway_metrics path /metrics /metrics/*\n\trespond @gateway_metrics 404\n" in gateway
    )
    assert "\t\tflush_interval -1\n" in gateway
    assert "respond @ollama_admin" in gateway  # the write endpoints stay refused here too
    assert "gateway_metrics" not in caddyfile()  # Ollama's own site has no such route


def test_caddyfile_bare_seconds_get_a_unit_caddy_accepts() -> None:
    assert "response_header_timeout 600s\n" in caddyfile(caddy_response_timeout="600")


def test_caddyfile_extra_directives_go_verbatim_inside_the_site_block() -> None:
    extra = "@blocked path /api/delete /api/pull\nrespond @blocked 403"
    text = caddyfile(caddy_extra_directives=extra)
    assert extra in site_block(text)
    assert site_block(text).rstrip().endswith(extra + "\n}")


def test_caddyfile_extra_directives_may_hold_quoted_braces_and_placeholders() -> None:
    extra = 'header X-Note "{ not a block" # } neither\nrespond /who {http.request.host} 200'
    assert extra in caddyfile(caddy_extra_directives=extra)


def test_caddyfile_puts_the_admin_api_on_a_unix_socket_not_tcp() -> None:
    text = caddyfile(caddy_tls="acme", caddy_acme_email="ops@example.com")
    assert re.findall(r"^\s*admin\b.*$", text, re.MULTILINE) == [
        "\tadmin unix//run/caddy/admin.sock"
    ]


def test_caddyfile_refuses_ollamas_write_endpoints_unless_opened() -> None:
    closed = site_block(caddyfile())
    matcher = re.search(r"^\t@ollama_admin path (.*)$", closed, re.MULTILINE)
    assert matcher is not None
    for path in ("/api/pull", "/api/push", "/api/delete", "/api/create", "/api/copy"):
        assert {path, f"{path}/*"} <= set(matcher.group(1).split())
    assert "/api/blobs/*" in matcher.group(1).split()
    assert re.search(r"^\trespond @ollama_admin `\{\"error\":.*\}` 403$", closed, re.MULTILINE)
    # the refusal comes before the proxy in the file (Caddy orders respond first anyway)
    assert closed.index("respond @ollama_admin") < closed.index("reverse_proxy")
    assert "@ollama_admin" not in caddyfile(caddy_open_admin_endpoints=True)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"site_names": []}, "site_names: none given"),
        ({"site_names": ["llm.example.com evil.example"]}, "site_names: 'llm.example.com evil"),
        ({"site_names": ["llm.example.com{"]}, "site_names: 'llm.example.com{'"),
        ({"caddy_tls": "files"}, "caddy_tls is files"),
        ({"cert_file": "/c.pem", "key_file": "/k.pem"}, "caddy_tls is internal"),
        (
            {"caddy_tls": "files", "cert_file": "/etc/{$HOME}.pem", "key_file": "/k.pem"},
            "cert_file: '/etc/{$HOME}.pem' has a character",
        ),
        (
            {"caddy_tls": "files", "cert_file": "/c.pem", "key_file": 'k".pem'},
            "key_file: 'k\".pem' is not an absolute path",
        ),
        ({"upstream": "127.0.0.1"}, "upstream: '127.0.0.1' is not HOST:PORT"),
        ({"upstream": "127.0.0.1:11434 { }"}, "upstream"),
        ({"upstream": "127.0.0.1:99999"}, "upstream"),
        ({"log_file": "access.log"}, "log_file: 'access.log' is not an absolute path"),
    ],
)
def test_caddyfile_refuses_what_its_role_passes_wrong(values: dict[str, Any], named: str) -> None:
    assert role_bug(caddyfile, **values).startswith(named)


# -- nftables.conf --------------------------------------------------------------------------------


def nftables(ollama_port: int = 11434, **values: Any) -> str:
    return render.render_nftables(role("firewall", **values), ollama_port=ollama_port)


def input_rules(text: str) -> list[str]:
    start = text.index("\tchain input {")
    chain = text[start : text.index("\n\t}\n", start)]
    lines = [line.strip() for line in chain.splitlines()[1:]]
    return [line for line in lines if line and not line.startswith("#")]


def statements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_nftables_replaces_only_its_own_table_in_one_file() -> None:
    text = nftables()
    assert text.startswith("#!/usr/sbin/nft -f\n# Managed by ollama-fleet")
    assert "flush" not in "\n".join(statements(text))
    # Declared empty first, so the delete works when the table is not there yet (no `destroy`).
    assert statements(text)[:3] == [
        "table inet ollama_fleet {}",
        "delete table inet ollama_fleet",
        "table inet ollama_fleet {",
    ]
    assert [line for line in statements(text) if line.startswith("table")] == [
        "table inet ollama_fleet {}",
        "table inet ollama_fleet {",
    ]
    assert "type filter hook input priority filter; policy drop;" in text


def test_nftables_leaves_forwarding_to_others_unless_asked() -> None:
    assert "chain forward" not in nftables()
    assert "hook output" not in nftables()
    forward = nftables(firewall_manage_forward=True)
    assert "type filter hook forward priority filter; policy drop;" in forward
    assert input_rules(forward) == input_rules(nftables())


def test_nftables_accepts_dhcp_replies_before_any_port() -> None:
    rules = input_rules(nftables())
    dhcp6 = rules.index("ip6 daddr fe80::/64 udp sport 547 udp dport 546 accept")
    dhcp4 = rules.index("meta nfproto ipv4 udp sport 67 udp dport 68 accept")
    assert max(dhcp6, dhcp4) < rules.index('tcp dport 22 accept comment "sshd_port"')


def test_nftables_lets_ssh_in_before_any_other_port_or_drop() -> None:
    rules = input_rules(nftables(sshd_port=2222, firewall_extra_tcp_ports=[8443]))
    ssh = rules.index('tcp dport 2222 accept comment "sshd_port"')
    before = rules[:ssh]
    assert "ct state established,related accept" in before
    assert not [rule for rule in before if "tcp dport" in rule]
    # Only packets conntrack calls invalid are dropped before it.
    assert [rule for rule in before if rule.endswith("drop")] == ["ct state invalid drop"]


def test_nftables_opens_http_and_extra_ports_to_everyone() -> None:
    rules = input_rules(nftables(firewall_extra_tcp_ports=[8443, 9000, 8443]))
    assert 'tcp dport { 80, 443 } accept comment "http_ports"' in rules
    assert 'tcp dport { 8443, 9000 } accept comment "firewall_extra_tcp_ports"' in rules


def test_nftables_keeps_ollama_closed_unless_networks_are_allowed() -> None:
    assert "11434" not in nftables()
    rules = input_rules(
        nftables(firewall_allow_ollama=["10.0.0.0/8", "10.1.2.3", "fd00::/8", "192.0.2.7/24"])
    )
    assert (
        "ip saddr { 10.0.0.0/8, 192.0.2.0/24 } tcp dport 11434 accept"
        ' comment "firewall_allow_ollama"'
    ) in rules
    assert 'ip6 saddr fd00::/8 tcp dport 11434 accept comment "firewall_allow_ollama"' in rules


def test_nftables_metrics_ports_only_for_allowed_networks() -> None:
    assert "9464" not in nftables()
    rules = input_rules(
        nftables(firewall_allow_metrics=["2001:db8::5"], firewall_metrics_ports=[9464, 9100])
    )
    assert rules[-1] == (
        'ip6 saddr 2001:db8::5/128 tcp dport { 9100, 9464 } accept comment "firewall_allow_metrics"'
    )
    assert "9464" not in nftables(firewall_allow_metrics=["10.0.0.0/8"], firewall_metrics_ports=[])


def test_nftables_opens_the_monitors_port_to_the_metrics_networks_only() -> None:
    allowed = {"firewall_allow_metrics": ["10.0.2.2/32"], "firewall_metrics_ports": [9100]}
    with_monitor = render.render_nftables(
        role("firewall", **allowed), ollama_port=11434, monitor_port=9500
    )
    rules = input_rules(with_monitor)
    assert [rule for rule in rules if "9500" in rule] == [
        'ip saddr 10.0.2.2/32 tcp dport { 9100, 9500 } accept comment "firewall_allow_metrics"'
    ]
    assert "9500" not in nftables(**allowed)  # no monitor: only the metrics ports
    nobody = render.render_nftables(role("firewall"), ollama_port=11434, monitor_port=9500)
    assert "9500" not in nobody  # no networks allowed: no rule, the policy drops it
    assert role_bug(
        render.render_nftables, role("firewall"), ollama_port=11434, monitor_port=0
    ).startswith("monitor_port: ")


def test_nftables_keeps_neighbour_discovery_and_limits_ping() -> None:
    text = nftables()
    for kind in ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert", "packet-too-big"):
        assert kind in text
    assert re.search(r"icmp type echo-request limit rate \d+/second .*accept", text)
    assert re.search(r"icmpv6 type echo-request limit rate \d+/second .*accept", text)


def test_plan_firewall_orders_rules_ssh_first() -> None:
    plan = render.plan_firewall(
        role("firewall", firewall_allow_ollama=["10.0.0.0/8"]), ollama_port=11434, http_ports=[443]
    )
    assert plan == (
        render.FirewallRule((22,), "sshd_port"),
        render.FirewallRule((443,), "http_ports"),
        render.FirewallRule((11434,), "firewall_allow_ollama", "ip", ("10.0.0.0/8",)),
    )


def test_nftables_refuses_ports_its_role_passes_wrong() -> None:
    assert role_bug(nftables, ollama_port=0).startswith("ollama_port: ")
    assert role_bug(
        render.render_nftables, role("firewall"), ollama_port=11434, http_ports=(443, True)
    ).startswith("http_ports: ")


def test_firewall_unit_loads_the_ruleset_and_stops_by_deleting_only_its_table() -> None:
    unit = render.render_firewall_unit(ruleset="/etc/nftables.d/ollama-fleet.nft")
    assert "ExecStart=/usr/sbin/nft -f /etc/nftables.d/ollama-fleet.nft\n" in unit
    assert "ExecReload=/usr/sbin/nft -f /etc/nftables.d/ollama-fleet.nft\n" in unit
    stop = [line for line in unit.splitlines() if line.startswith("ExecStop=")]
    assert stop == [
        'ExecStop=/usr/sbin/nft "add table inet ollama_fleet; delete table inet ollama_fleet"'
    ]
    assert "flush" not in "\n".join(line for line in unit.splitlines() if "=" in line)
    # Back after nftables.service flushes the whole ruleset (restart, reload, package upgrade).
    assert "After=nftables.service\n" in unit
    assert "PartOf=nftables.service\n" in unit
    assert "ReloadPropagatedFrom=nftables.service\n" in unit


def test_firewall_unit_refuses_a_ruleset_path_systemd_would_expand() -> None:
    message = role_bug(render.render_firewall_unit, ruleset="/etc/nftables.d/100%.nft")
    assert message.startswith("ruleset: ")


# -- this project's services ----------------------------------------------------------------------

SERVICES = {
    "check": render.render_fleet_check_service,
    "monitor": render.render_monitor_service,
    "gateway": render.render_gateway_service,
}


def test_check_service_runs_the_checks_into_the_state_directory() -> None:
    unit = render.render_fleet_check_service(role("services", fleet_venv="/srv/fleet/"))
    assert settings(unit, "Type") == ["oneshot"]
    assert settings(unit, "ExecStart") == [
        "/srv/fleet/bin/ollama-fleet check /etc/ollama-fleet/checks.yml"
        " --format json -o /var/lib/ollama-fleet/last-check.json"
    ]


def test_check_timer_runs_after_boot_then_every_interval() -> None:
    timer = render.render_fleet_check_timer(role("services", fleet_check_interval="1h 30min"))
    assert settings(timer, "OnBootSec") == ["2min"]
    assert settings(timer, "OnUnitActiveSec") == ["1h 30min"]
    assert settings(timer, "WantedBy") == ["timers.target"]


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("monitor", "monitor --config /etc/ollama-fleet/monitor.yml"),
        ("gateway", "gateway --config /etc/ollama-fleet/gateway.yml --listen 127.0.0.1:8080"),
    ],
)
def test_long_running_services_restart_and_start_at_boot(name: str, command: str) -> None:
    unit = SERVICES[name](role("services"))
    assert settings(unit, "ExecStart") == [f"/opt/ollama-fleet/bin/ollama-fleet {command}"]
    assert settings(unit, "Restart") == ["on-failure"]
    assert settings(unit, "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_unprivileged_with_only_their_state_dir_writable(name: str) -> None:
    unit = SERVICES[name](role("services"))
    expected = {
        "User": "ollama-fleet",
        "DynamicUser": "no",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
    }
    for key, value in expected.items():
        assert settings(unit, key) == [value], key
    assert settings(unit, "ReadWritePaths") == []
    assert settings(unit, "StateDirectory")[0] == "ollama-fleet"


def test_monitor_unit_checks_its_config_first_reloads_on_hup_and_owns_its_state_dir() -> None:
    unit = render.render_monitor_service(role("services"))
    command = "/opt/ollama-fleet/bin/ollama-fleet monitor --config /etc/ollama-fleet/monitor.yml"
    assert settings(unit, "ExecStartPre") == [f"{command} --check-config"]
    assert settings(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    # /var/lib/ollama-fleet/monitor, made by systemd and owned by the service user
    assert settings(unit, "StateDirectory") == ["ollama-fleet", "ollama-fleet/monitor"]
    assert "After=network-online.target ollama.service\n" in unit


def test_monitor_unit_sees_only_nvidias_devices_on_a_gpu_host() -> None:
    plain = render.render_monitor_service(role("services"))
    gpu = render.render_monitor_service(role("services"), gpu=True)

    assert settings(plain, "PrivateDevices") == ["yes"]
    assert settings(plain, "DevicePolicy") == settings(plain, "DeviceAllow") == []
    # systemd takes the last PrivateDevices=: the hardening's yes, then this no
    assert settings(gpu, "PrivateDevices") == ["yes", "no"]
    assert settings(gpu, "DevicePolicy") == ["closed"]
    assert settings(gpu, "DeviceAllow") == ["char-nvidia* rw"]
    assert settings(gpu, "ProtectKernelModules") == ["yes"]  # the rest of the hardening stays


# -- gateway.yml and monitor.yml ------------------------------------------------------------------

KEYS = ["sk-first", "key: with # yaml 'specials' \"too\"", "ünïcödé-key"]
NODES = [
    {"name": "gpu-1", "url": "http://10.0.0.11:11434", "max_parallel": 4},
    {"name": "gpu-2", "url": "http://[fd00::12]:11434", "weight": 3, "queue": 0},
]


def gateway_config(**values: Any) -> str:
    ollama_host = values.pop("ollama_host", "127.0.0.1:11434")
    extra = {k: values.pop(k) for k in ("num_parallel", "local_name") if k in values}
    return render.render_gateway_config(
        role("services", **values), ollama_host=ollama_host, **extra
    )


def loaded(text: str, tmp_path: Path) -> GatewayConfig:
    """gateway.yml as the gateway itself reads it (its --check-config, at every start)."""
    path = tmp_path / "gateway.yml"
    path.write_text(text)
    return load_config(path)


def test_gateway_config_fronts_this_hosts_ollama_by_default(tmp_path: Path) -> None:
    text = gateway_config(gateway_port=8081, num_parallel=2, local_name="@strictfake/gpu 1")
    config = loaded(text, tmp_path)
    assert config.listen == ("127.0.0.1", 8081)
    assert [(n.name, n.url, n.max_parallel) for n in config.nodes] == [
        ("strictfake-gpu-1", "http://127.0.0.1:11434", 2)
    ]
    assert config.keys == ()
    assert text.splitlines()[1] == "# Not run on this host (gateway_enabled: false)."


def test_gateway_config_stores_keys_only_as_sha256_hashes(tmp_path: Path) -> None:
    text = gateway_config(gateway_enabled=True, gateway_api_keys=KEYS)
    for key in KEYS:
        assert key not in text
    keys = loaded(text, tmp_path).keys
    assert [(k.name, k.role, k.models) for k in keys] == [
        (f"key-{n}", Role.USER, ("*",)) for n in (1, 2, 3)
    ]
    assert [k.sha256 for k in keys] == [hashlib.sha256(key.encode()).hexdigest() for key in KEYS]
    assert text.splitlines()[1] == "# Run by ollama-fleet-gateway.service on this host."


def test_gateway_config_takes_an_already_hashed_key_as_is(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"sk-first").hexdigest()
    keys = loaded(gateway_config(gateway_api_keys=[f"sha256:{digest}"]), tmp_path).keys
    assert [k.sha256 for k in keys] == [digest]


def test_gateway_config_carries_each_keys_role_models_and_limits(tmp_path: Path) -> None:
    entries = [
        {"name": "alice", "key": "sk-alice", "role": "user", "models": ["llama3.2:*"]},
        {
            "key": "sk-bot",
            "rpm": 60,
            "tpm": 10000,
            "max_concurrent": 2,
            "expires": date(2027, 1, 1),
        },
        {"name": "ops", "key": "sk-ops", "role": "admin", "expires": "2027-06-01T12:00:00+02:00"},
        {"name": "ro", "key": "sk-ro", "role": "readonly"},
    ]
    text = gateway_config(gateway_api_keys=entries)
    assert "sk-" not in text
    alice, bot, ops, ro = loaded(text, tmp_path).keys
    assert (alice.name, alice.role, alice.models) == ("alice", Role.USER, ("llama3.2:*",))
    assert (bot.name, bot.rpm, bot.tpm, bot.max_concurrent) == ("key-2", 60, 10000, 2)
    assert bot.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert (ops.role, ops.expires) == (Role.ADMIN, datetime(2027, 6, 1, 10, 0, tzinfo=UTC))
    assert ro.role is Role.READONLY


def test_gateway_config_lists_the_resolved_nodes_strategy_and_limits(tmp_path: Path) -> None:
    text = gateway_config(
        gateway_enabled=True,
        gateway_nodes=NODES,
        gateway_strategy="weighted",
        gateway_limits={"rpm": 600, "tpm": 1000000},
        gateway_queue_timeout="2m",
    )
    config = loaded(text, tmp_path)
    assert [(n.name, n.url, n.weight, n.max_parallel, n.queue) for n in config.nodes] == [
        ("gpu-1", "http://10.0.0.11:11434", 1, 4, DEFAULT_QUEUE),
        ("gpu-2", "http://[fd00::12]:11434", 3, DEFAULT_MAX_PARALLEL, 0),
    ]
    assert config.balancing.strategy is Strategy.WEIGHTED
    assert config.balancing.queue_timeout_s == 120
    assert (config.limits.rpm, config.limits.tpm) == (600, 1000000)


def test_gateway_config_refuses_nodes_not_resolved_to_urls() -> None:
    # the controller resolves host and group names (deploys/gateway_fleet): a bug's guard
    message = role_bug(gateway_config, gateway_enabled=True, gateway_nodes=["gpu"])
    assert message == "gateway_nodes: 'gpu' is not resolved to {name, url}"


@pytest.mark.parametrize(
    ("ollama_host", "upstream"),
    [
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("http://[::]:11500", "http://[::1]:11500"),
        ("10.0.0.5:11434", "http://10.0.0.5:11434"),
    ],
)
def test_gateway_config_dials_wildcard_listen_addresses_on_loopback(
    ollama_host: str, upstream: str, tmp_path: Path
) -> None:
    (node,) = loaded(gateway_config(ollama_host=ollama_host), tmp_path).nodes
    assert node.url == upstream


def test_gateway_unit_checks_its_config_first_and_reloads_on_sighup() -> None:
    unit = render.render_gateway_service(role("services"))
    config = "--config /etc/ollama-fleet/gateway.yml --listen 127.0.0.1:8080"
    assert (
        f"ExecStartPre=/opt/ollama-fleet/bin/ollama-fleet gateway {config} --check-config" in unit
    )
    assert f"ExecStart=/opt/ollama-fleet/bin/ollama-fleet gateway {config}\n" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_a_new_gateway_port_changes_the_unit_so_the_deploy_restarts_it() -> None:
    # a reload keeps the old socket: only a restart moves the gateway to the port Caddy dials
    before = render.render_gateway_service(role("services"))
    after = render.render_gateway_service(role("services", gateway_port=8081))
    assert before != after
    assert "--listen 127.0.0.1:8081" in after


def test_dial_address_refuses_what_is_not_host_port() -> None:
    # ollama_host passed validation before any role reads it: this is only a bug's guard.
    assert role_bug(render.dial_address, "localhost") == "ollama_host: 'localhost' is not HOST:PORT"


def monitor_config(*, gpu: bool = False, **values: Any) -> dict[str, Any]:
    loaded = yaml.safe_load(render.render_monitor_config(role("services", **values), gpu=gpu))
    assert isinstance(loaded, dict)
    return loaded


# the keys the monitor's config reader accepts (ollama_fleet.monitor.config)
MONITOR_KEYS = {
    "listen",
    "state_dir",
    "title",
    "refresh",
    "inventory",
    "vault_password_file",
    "targets",
    "checks",
    "intervals",
    "jitter",
    "concurrency",
    "timeouts",
    "shutdown_grace",
    "retention",
    "rollup_retention",
    "alerts",
    "receivers",
    "gpu",
}


def test_monitor_config_by_default_watches_the_host_on_loopback_without_receivers() -> None:
    assert monitor_config() == {
        "listen": "127.0.0.1:9464",
        "state_dir": "/var/lib/ollama-fleet/monitor",
        "inventory": "/etc/ollama-fleet/checks.yml",
        "gpu": "off",
    }


def test_monitor_config_keeps_every_receiver_url_exactly_and_only_those_set() -> None:
    webhook = "https://hooks.example.com/T0/B1?token=a:b%20c#frag&x='y'"
    slack = "https://hooks.slack.example/services/T0/B0/XyZ"
    config = monitor_config(
        monitor_webhook_url=webhook,
        monitor_slack_url=slack,
        monitor_alertmanager_url="http://10.0.0.9:9093",
    )
    assert config["receivers"] == [
        {"name": "webhook", "type": "webhook", "url": webhook},
        {"name": "slack", "type": "slack", "url": slack},
        {"name": "alertmanager", "type": "alertmanager", "url": "http://10.0.0.9:9093"},
    ]
    only_slack = monitor_config(monitor_slack_url=slack)["receivers"]
    assert only_slack == [{"name": "slack", "type": "slack", "url": slack}]
    assert set(config) <= MONITOR_KEYS


@pytest.mark.parametrize(
    ("address", "listen"),
    [("0.0.0.0", "0.0.0.0:9500"), ("::", "[::]:9500"), ("::1", "[::1]:9500")],
)
def test_monitor_config_listens_where_it_is_told(address: str, listen: str) -> None:
    assert monitor_config(monitor_address=address, monitor_port=9500)["listen"] == listen


def test_monitor_config_carries_intervals_and_reads_gpus_only_on_gpu_hosts() -> None:
    intervals = {"connectivity": "5s", "tls": "1h"}
    config = monitor_config(monitor_intervals=intervals, gpu=True)
    assert config["intervals"] == intervals
    assert config["gpu"] == "auto"
    assert set(config) <= MONITOR_KEYS


def test_monitor_config_says_whether_the_monitor_runs_on_the_host() -> None:
    # turning the monitor off changes the file: what the deploy's snapshot sees as drift
    on = render.render_monitor_config(role("services", monitor_enabled=True), gpu=False)
    off = render.render_monitor_config(role("services"), gpu=False)
    assert "# Run by ollama-fleet-monitor.service on this host." in on
    assert "# Not run on this host (monitor_enabled: false)." in off
    assert yaml.safe_load(on) == yaml.safe_load(off)


def test_monitor_config_refuses_an_inventory_path_its_role_passes_wrong() -> None:
    message = role_bug(
        render.render_monitor_config, role("services"), gpu=False, inventory="checks.yml"
    )
    assert message == "inventory: 'checks.yml' is not an absolute path"


def test_caddyfile_reads_the_request_before_the_upstream_in_each_caddys_words() -> None:
    # Caddy 2.6.2 (Debian 12) drops the upstream connection when a fast answer comes before
    # the request body was read to its end, and ends the answer as if complete; 2.6.4 renamed
    # the directive. (test_render_tools validates the 2.6.2 form with the real caddy.)
    legacy = caddyfile()
    current = caddyfile(legacy_buffering=False)

    assert "\t\tbuffer_requests\n\t\tmax_buffer_size 1MB\n" in legacy
    assert "request_buffers" not in legacy
    assert "\t\trequest_buffers 1MB\n" in current
    assert "buffer_requests" not in current and "max_buffer_size" not in current


def test_a_disabled_gateway_config_ignores_nodes_left_unresolved() -> None:
    # gateway_nodes inherited from group vars: the controller resolves only enabled gateways
    text = gateway_config(gateway_enabled=False, gateway_nodes=["gpu", "gpu-9"])
    assert text.splitlines()[1] == "# Not run on this host (gateway_enabled: false)."
    assert [node["url"] for node in yaml.safe_load(text)["nodes"]] == ["http://127.0.0.1:11434"]
