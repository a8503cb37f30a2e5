"""The deploy's side of the sessions and shared limits: the variables, gateway.yml, the unit.

The database and Redis URLs may carry passwords: every refusal is checked for not quoting them,
and the rendered file is read back by the gateway's own reader (its --check-config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ollama_fleet import hostvars, render
from ollama_fleet.cli import main
from ollama_fleet.errors import ConfigError
from ollama_fleet.gateway.config import load_config
from ollama_fleet.gateway.settings import GatewayConfig
from ollama_fleet.inventory import InventoryError, load_inventory

PASSWORD = "pw-5e55ion-9f1d"
PG_URL = f"postgresql://fleet:{PASSWORD}@db.internal:5432/ollama_fleet"
REDIS_URL = f"rediss://:{PASSWORD}@cache.internal:6380/2"
DEFAULT_DB = "sqlite:////var/lib/ollama-fleet/gateway/sessions.sqlite3"


def refusal(values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        hostvars.validate(values, where="inv.yml: host gw-1")
    return str(raised.value)


# -- the variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        PG_URL,
        f"postgres://fleet:{PASSWORD}@10.0.0.40/ollama_fleet?sslmode=verify-full",
        "postgresql://fleet@[fd00::40]:5432/ollama_fleet",
        "sqlite:////var/lib/ollama-fleet/gateway/history.db",
        DEFAULT_DB,
    ],
)
def test_a_database_url_the_gateway_can_use_passes(url: str) -> None:
    hostvars.validate({"gateway_database_url": url}, where="inv.yml: host gw-1")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"mysql://fleet:{PASSWORD}@db/x", "the scheme mysql:// is none of postgresql://"),
        (f"fleet:{PASSWORD}@db/x", "expected a URL such as postgresql://USER:PASSWORD@HOST"),
        (f"postgresql://fleet:{PASSWORD}@db:99999/x", "the host or port cannot be read"),
        (f"postgresql://fleet:{PASSWORD}@db:0/x", "port 0 is no port to connect to"),
        (f"postgresql://fleet:{PASSWORD}@db/x\nExecStart=/bin/sh", "expected a URL such as"),
        (f"postgresql://fleet:{PASSWORD} @db/x", "on one line without blanks"),
        ("sqlite:///sessions.sqlite3", "a relative SQLite path"),
        ("sqlite:////etc/ollama-fleet/sessions.sqlite3", "the SQLite path must be a file under"),
        ("sqlite:////var/lib/ollama-fleet/gateway", "the SQLite path must be a file under"),
        ("sqlite:////var/lib/ollama-fleet/gateway/../../x.db", "of letters, digits and"),
        ("sqlite:////var/lib/ollama-fleet/gateway/a;b.db", "of letters, digits and"),
        (12, "expected a URL such as"),
    ],
)
def test_a_bad_database_url_is_refused_without_showing_it(url: Any, problem: str) -> None:
    message = refusal({"gateway_database_url": url})
    assert message.startswith(
        "inv.yml: host gw-1: gateway_database_url: invalid value (not shown: it is a secret); "
    )
    assert problem in message
    assert PASSWORD not in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            f"http://:{PASSWORD}@cache:6379/0",
            "the scheme http:// is neither redis:// nor rediss://",
        ),
        (f"redis://:{PASSWORD}@/0", "no host after the scheme"),
        (f"redis://:{PASSWORD}@cache:6379/sessions", "at most /N, a database number"),
        (f"redis://:{PASSWORD}@cache:port/0", "the host or port cannot be read"),
        (f"unix:///run/redis/redis.sock?password={PASSWORD}", "neither redis:// nor rediss://"),
    ],
)
def test_a_bad_redis_url_is_refused_without_showing_it(url: str, problem: str) -> None:
    message = refusal({"gateway_redis_url": url})
    assert message.startswith(
        "inv.yml: host gw-1: gateway_redis_url: invalid value (not shown: it is a secret); "
    )
    assert problem in message
    assert PASSWORD not in message


def test_redis_urls_with_and_without_tls_pass() -> None:
    for url in (REDIS_URL, "redis://127.0.0.1:6379/0", "redis://cache.internal", "redis://c/"):
        hostvars.validate({"gateway_redis_url": url}, where="inv.yml: host gw-1")


def test_the_urls_are_secrets_for_every_message_and_the_runners_redaction() -> None:
    assert {"gateway_database_url", "gateway_redis_url"} <= hostvars.SECRET_VARS


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (
            {"gateway_redis_on_error": "fail"},
            "gateway_redis_on_error: expected one of open, closed",
        ),
        (
            {"gateway_history_messages": -1},
            "gateway_history_messages: expected a whole number >= 0",
        ),
        ({"gateway_history_tokens": 0}, "gateway_history_tokens: expected a whole number >= 1"),
        ({"gateway_history_tokens": True}, "gateway_history_tokens: expected a whole number >= 1"),
    ],
)
def test_bad_session_settings_are_refused(values: dict[str, Any], shown: str) -> None:
    assert refusal(values).startswith(f"inv.yml: host gw-1: {shown}")


def test_failing_closed_without_redis_is_refused_on_a_gateway() -> None:
    gateway = {"gateway_enabled": True, "gateway_api_keys": ["sk-a"], "gateway_nodes": ["gpu"]}
    values = {**gateway, "ollama_enabled": False, "gateway_redis_on_error": "closed"}
    assert refusal(values) == (
        "inv.yml: host gw-1: gateway_redis_on_error: closed, but gateway_redis_url is not set: "
        "the limits are in memory and cannot fail"
    )
    hostvars.validate(values | {"gateway_redis_url": REDIS_URL}, where="inv.yml: host gw-1")


def test_the_loader_names_the_line_of_a_bad_url_and_not_the_url(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        "all:\n  hosts:\n    gw-1:\n      ssh_port: 22\n"
        f"      gateway_database_url: mysql://fleet:{PASSWORD}@db/x\n"
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{path}:5: gateway_database_url: invalid value (not shown")
    assert PASSWORD not in str(info.value)


# -- gateway.yml ----------------------------------------------------------------------------


def gateway_yml(**values: Any) -> str:
    return render.render_gateway_config(
        hostvars.resolved(values, "services"), ollama_host="127.0.0.1:11434"
    )


def loaded(text: str, tmp_path: Path) -> GatewayConfig:
    path = tmp_path / "gateway.yml"
    path.write_text(text)
    return load_config(path)


def test_gateway_yml_always_names_the_database_the_sqlite_file_by_default(
    tmp_path: Path,
) -> None:
    text = gateway_yml()
    document = yaml.safe_load(text)
    assert document["sessions"] == {
        "database_url": DEFAULT_DB,
        "history_messages": 40,
        "history_tokens": 8192,
        "flush_interval": "500ms",
        "max_message_chars": 32000,
    }
    assert "redis" not in document  # limits in memory
    assert list(document)[-3:] == ["balancing", "sessions", "access_log"]
    config = loaded(text, tmp_path)
    assert config.sessions.database_url == DEFAULT_DB
    assert config.shared_limits.redis_url is None
    # the file is in the directory the unit's StateDirectory= makes, which the rule holds to
    assert DEFAULT_DB.removeprefix("sqlite:///").startswith(hostvars.GATEWAY_STATE_DIR + "/")
    assert "passwords" not in text


def test_gateway_yml_carries_postgresql_redis_and_the_history_bounds(tmp_path: Path) -> None:
    text = gateway_yml(
        gateway_enabled=True,
        gateway_database_url=PG_URL,
        gateway_redis_url=REDIS_URL,
        gateway_redis_on_error="closed",
        gateway_history_messages=0,
        gateway_history_tokens=2048,
    )
    document = yaml.safe_load(text)
    assert document["sessions"]["database_url"] == PG_URL
    assert document["redis"] == {"url": REDIS_URL, "on_error": "closed", "timeout": "250ms"}
    assert "# The database and Redis URLs may hold passwords: mode 0640" in text
    config = loaded(text, tmp_path)
    assert config.sessions.database_url == PG_URL
    assert (config.sessions.history_messages, config.sessions.history_tokens) == (0, 2048)
    assert (config.sessions.flush_interval_s, config.sessions.max_message_chars) == (0.5, 32000)
    shared = config.shared_limits
    assert (shared.redis_url, shared.on_error, shared.timeout_s) == (REDIS_URL, "closed", 0.25)


def test_a_url_with_yaml_specials_survives_the_file(tmp_path: Path) -> None:
    # percent-encoded and YAML-significant characters in a password: written quoted, read back
    url = "postgresql://fleet:p%40ss:%23w0rd&*x@db.internal:5432/ollama_fleet?sslmode=require"
    config = loaded(gateway_yml(gateway_database_url=url, gateway_redis_url=REDIS_URL), tmp_path)
    assert config.sessions.database_url == url


def test_the_gateways_check_config_takes_the_rendered_file_without_showing_passwords(
    tmp_path: Path,
) -> None:
    # what the unit's ExecStartPre= and the deploy's staged-copy check run
    path = tmp_path / "gateway.yml"
    path.write_text(gateway_yml(gateway_database_url=PG_URL, gateway_redis_url=REDIS_URL))
    args = ["gateway", "--config", str(path), "--listen", "127.0.0.1:8080", "--check-config"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "sessions in postgresql://***@db.internal:5432/ollama_fleet" in result.output
    assert "limits shared in rediss://***@cache.internal:6380/2 (on error: open)" in result.output
    assert PASSWORD not in result.output


# -- the unit -------------------------------------------------------------------------------


def test_the_gateway_unit_has_the_state_directory_the_sqlite_file_lives_in() -> None:
    unit = render.render_gateway_service(hostvars.resolved({}, "services"))
    directories = [line for line in unit.splitlines() if line.startswith("StateDirectory=")]
    assert directories == ["StateDirectory=ollama-fleet", "StateDirectory=ollama-fleet/gateway"]
    assert f"/var/lib/{directories[1].split('=', 1)[1]}" == hostvars.GATEWAY_STATE_DIR
    # hardened as before: the state directory is the only place it may write
    assert "ProtectSystem=strict\n" in unit and "UMask=0027\n" in unit
    after = next(line for line in unit.splitlines() if line.startswith("After="))
    assert after.split("=", 1)[1].split() == [
        "network-online.target",
        "ollama.service",
        "postgresql.service",
        "redis-server.service",
    ]


def test_the_services_table_documents_the_new_variables() -> None:
    table = hostvars.markdown_table("services")
    for name in (
        "gateway_database_url",
        "gateway_redis_url",
        "gateway_redis_on_error",
        "gateway_history_messages",
        "gateway_history_tokens",
    ):
        assert f"| `{name}` |" in table
    assert DEFAULT_DB.removeprefix("sqlite:///") in hostvars.BY_NAME["gateway_database_url"].meaning
