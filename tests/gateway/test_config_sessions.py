"""gateway.yml's sessions: and redis: sections: values read, URLs checked and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.gateway.config import describe, load_config
from ollama_fleet.gateway.settings import GatewayConfig, Sessions, SharedLimits

NODE = "nodes:\n  - {name: gpu-1, url: http://127.0.0.1:11434}\n"
PASSWORD = "pw-8e1c-not-for-logs"


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(text: str) -> GatewayConfig:
    Path("gateway.yml").write_text(NODE + text)
    return load_config(Path("gateway.yml"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return str(caught.value).splitlines()


def test_defaults_sqlite_and_limits_in_memory() -> None:
    config = load("")
    assert config.sessions == Sessions()
    assert config.shared_limits == SharedLimits()
    assert config.sessions.database_url is None


def test_every_key_is_read() -> None:
    config = load(
        "sessions:\n"
        f"  database_url: postgresql://fleet:{PASSWORD}@db.internal:5432/fleet\n"
        "  history_messages: 12\n  history_tokens: 2000\n  flush_interval: 250ms\n"
        "  max_message_chars: 500\n"
        f"redis:\n  url: redis://:{PASSWORD}@127.0.0.1:6379/0\n  on_error: closed\n"
        "  timeout: 100ms\n"
    )
    assert config.sessions == Sessions(
        database_url=f"postgresql://fleet:{PASSWORD}@db.internal:5432/fleet",
        history_messages=12,
        history_tokens=2000,
        flush_interval_s=0.25,
        max_message_chars=500,
    )
    assert config.shared_limits == SharedLimits(
        redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0", on_error="closed", timeout_s=0.1
    )
    line = describe(config)
    assert "sessions in postgresql://***@db.internal:5432/fleet" in line
    assert "limits shared in redis://***@127.0.0.1:6379/0 (on error: closed)" in line
    assert PASSWORD not in line and PASSWORD not in repr(config)


def test_sqlite_urls() -> None:
    assert load("sessions: {database_url: 'sqlite:////var/lib/x/s.db'}\n").sessions.database_url
    assert problems("sessions: {database_url: 'sqlite://s.db'}\n") == [
        "gateway.yml:3: sessions.database_url: expected sqlite:////ABSOLUTE/PATH (four slashes) "
        "or sqlite:///RELATIVE",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"sessions: {{database_url: 'mysql://u:{PASSWORD}@h/db'}}\n",
            "gateway.yml:3: sessions.database_url: expected a URL starting sqlite://, "
            "postgresql://, postgres:// (the value is not shown)",
        ),
        (
            f"redis: {{url: 'http://:{PASSWORD}@h:6379'}}\n",
            "gateway.yml:3: redis.url: expected a URL starting redis://, rediss:// "
            "(the value is not shown)",
        ),
        (
            f"redis: {{url: 'redis://:{PASSWORD}@h:port'}}\n",
            "gateway.yml:3: redis.url: not a URL such as redis://HOST:6379/0 or rediss:// "
            "(the value is not shown)",
        ),
        (
            "redis: {on_error: maybe}\n",
            "gateway.yml:3: redis.on_error: expected one of open, closed; got 'maybe'",
        ),
        (
            "sessions: {flush_interval: 1m}\n",
            "gateway.yml:3: sessions.flush_interval: '1m' is too long; at most 10s",
        ),
        (
            "sessions: {history_tokens: 0}\n",
            "gateway.yml:3: sessions.history_tokens: expected a whole number of at least 1, got 0",
        ),
        (
            "sessions:\n  history_mesages: 3\n",
            "gateway.yml:4: sessions.history_mesages: unknown key; did you mean history_messages?",
        ),
    ],
)
def test_bad_values_are_named_and_secrets_never_shown(text: str, problem: str) -> None:
    found = problems(text)
    assert found == [problem]
    assert PASSWORD not in "\n".join(found)
