"""Redaction: whole secret values out of everything shown, without shredding ordinary words."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ollama_fleet.inventory import load_inventory
from ollama_fleet.redact import (
    MIN_SECRET_LENGTH,
    REDACTED,
    escaped_forms,
    redact_strings,
    redactor,
)


def test_whole_values_are_replaced_longest_first_in_one_pass() -> None:
    redact = redactor(["sk-secret", "sk-secret-123", "https://hooks.example/T0/B0/xyz"])
    assert redact("key sk-secret-123 and sk-secret.") == f"key {REDACTED} and {REDACTED}."
    assert redact("POST https://hooks.example/T0/B0/xyz failed") == f"POST {REDACTED} failed"


def test_short_strings_of_a_whole_file_vault_are_not_hunted_everywhere() -> None:
    # a whole-file vault makes every string "secret": 580, true, gpu, /data...
    redact = redactor(["580", "gpu", "true", "/data", "a-real-api-key-0123"])
    text = "[gpu-1] gpu: NVIDIA driver 580 (true) /data a-real-api-key-0123"
    assert redact(text) == f"[gpu-1] gpu: NVIDIA driver 580 (true) /data {REDACTED}"
    assert all(len(s) < MIN_SECRET_LENGTH for s in ("580", "gpu", "true", "/data"))


def test_a_secret_that_is_a_pattern_character_is_matched_literally() -> None:
    redact = redactor(["p(a)s.s*w+rd?"])
    assert redact("x p(a)s.s*w+rd? y pass.word") == f"x {REDACTED} y pass.word"


def test_json_escapes_cannot_hide_a_secret() -> None:
    secret = 'se"cr\\etö-value'
    event = {"op": "x", "stdout": [f"token={secret}"], "n": 3}
    redacted = redact_strings(event, redactor([secret]))
    assert secret not in json.dumps(redacted, ensure_ascii=False)
    assert json.dumps(secret)[1:-1] not in json.dumps(redacted)
    assert redacted["n"] == 3


def test_no_secrets_leaves_text_alone() -> None:
    assert redactor([])("anything ***") == "anything ***"
    assert redactor([""])("") == ""


def test_a_rendered_report_is_redacted_in_the_escaped_spelling_too() -> None:
    secret = 'https://hooks.example/T0?a=1&b="x"'
    redact = redactor(escaped_forms([secret]))
    html_text = f"<td>{html.escape(secret)}</td>"
    json_text = json.dumps({"url": secret})
    assert secret not in redact(html_text) and html.escape(secret) not in redact(html_text)
    assert REDACTED in redact(html_text)
    assert json.dumps(secret)[1:-1] not in redact(json_text)
    assert REDACTED in redact(json_text)


def test_only_the_keys_of_gateway_api_keys_are_secrets(tmp_path: Path) -> None:
    # role names, key names and model globs show in output: only `key` (or a bare entry) hides
    path = tmp_path / "inventory.yml"
    path.write_text(
        "all:\n  hosts:\n    gw-1:\n      gateway_api_keys:\n"
        "        - {name: alice-laptop, key: sk-alice-secret-1, role: readonly,"
        " models: ['llama3.2:*']}\n"
        "        - sk-plain-secret-2\n"
    )
    assert load_inventory(path).secrets == frozenset({"sk-alice-secret-1", "sk-plain-secret-2"})
