"""The gateway as a process (`ollama-fleet gateway --config F`): SIGHUP reloads, SIGTERM stops."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.listen import bind

from .live import GatewayProcess, gateway_config, make_key, sim_node, wait_for, write_config

pytestmark = pytest.mark.integration

BODY = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}


def _status(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(url + "/api/tags", headers=headers, timeout=10, trust_env=False).status_code


def test_sighup_applies_a_new_key_and_keeps_a_stream_in_flight(tmp_path: Path) -> None:
    old_key, old = make_key("old")
    new_key, new = make_key("new")
    with sim_node(tps=20) as node:
        config = gateway_config({"a": node.url}, (old,))
        path = write_config(tmp_path / "gateway.yml", config)
        with GatewayProcess(path, tmp_path / "log") as gateway:
            assert _status(gateway.url, old_key) == 200
            assert _status(gateway.url, new_key) == 401
            lines: list[dict[str, Any]] = []
            first = threading.Event()

            def stream() -> None:
                body = {**BODY, "options": {"num_predict": 40}}
                headers = {"Authorization": f"Bearer {old_key}"}
                with (
                    httpx.Client(timeout=30, trust_env=False) as client,
                    client.stream(
                        "POST", gateway.url + "/api/chat", json=body, headers=headers
                    ) as r,
                ):
                    for line in r.iter_lines():
                        lines.append(json.loads(line))
                        first.set()

            reader = threading.Thread(target=stream)
            reader.start()
            assert first.wait(10)
            write_config(path, replace(config, keys=(new,)))
            gateway.signal(signal.SIGHUP)
            wait_for("the new key to work", lambda: _status(gateway.url, new_key) == 200)
            assert _status(gateway.url, old_key) == 401
            reader.join(timeout=30)
            assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 40

            path.write_text("nodes: [oops\n")
            gateway.signal(signal.SIGHUP)
            wait_for("the refusal in the log", lambda: "new config refused" in gateway.text())
            assert _status(gateway.url, new_key) == 200
            assert gateway.stop() == 0
    log = gateway.text()
    assert "gateway: stopped" in log
    assert old_key not in log and new_key not in log


def test_sigterm_lets_a_stream_in_flight_finish(tmp_path: Path) -> None:
    key, spec = make_key("alice")
    with sim_node(tps=20) as node:
        path = write_config(tmp_path / "gateway.yml", gateway_config({"a": node.url}, (spec,)))
        with GatewayProcess(path, tmp_path / "log") as gateway:
            headers = {"Authorization": f"Bearer {key}"}
            body = {**BODY, "options": {"num_predict": 20}}
            with (
                httpx.Client(timeout=30, trust_env=False) as client,
                client.stream("POST", gateway.url + "/api/chat", json=body, headers=headers) as r,
            ):
                lines = r.iter_lines()
                first = json.loads(next(lines))
                gateway.signal(signal.SIGTERM)
                rest = [json.loads(line) for line in lines]
            assert gateway.proc.wait(timeout=30) == 0
    assert "message" in first
    assert rest[-1]["done"] is True


def test_a_taken_port_is_a_config_error_naming_the_file() -> None:
    with bind("127.0.0.1", 0, source="gateway.yml") as taken:
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=r"^gateway\.yml: listen: cannot listen on 127\.0\.0\.1:\d+"
        ):
            bind("127.0.0.1", port, source="gateway.yml")
