"""monitor.yml into a MonitorConfig: good files become records, bad ones exact one-line problems.

Pure: files written into tmp_path, no servers. Messages are read as an operator sees them
(`monitor.yml:LINE: KEY: problem`), and secrets are proven absent from them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ollama_fleet import vault
from ollama_fleet.checks.model import CHECK_NAMES, PublicAccess, RequiredModel, Threshold
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.inventory_errors import InventoryError
from ollama_fleet.monitor.config import (
    SECTIONS,
    config_from_inventory,
    describe,
    load_config,
    parse_listen,
)
from ollama_fleet.monitor.durations import format_duration, parse_duration
from ollama_fleet.monitor.settings import AlertPolicy, MonitorConfig
from ollama_fleet.vault import VaultPassword, encrypt_text

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "monitor.md"
EXAMPLE = ROOT / "docs" / "monitor.example.yml"

HOOK = "https://hooks.slack.com/services/T000/B000/hook-secret-5e1f"
HEADER = "Bearer header-secret-77aa"
KEY = "sk-target-secret-3c9d"
NO_ENV: dict[str, str] = {}
ONE = "targets:\n  - url: https://gpu-1.example.com\n"


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path, so files are named as written (`monitor.yml:3: ...`)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(text: str, environ: dict[str, str] | None = None) -> MonitorConfig:
    Path("monitor.yml").write_text(text)
    return load_config(Path("monitor.yml"), environ=NO_ENV if environ is None else environ)


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, environ)
    return str(caught.value).splitlines()


# -- durations and listen addresses --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172800),
        ("1.5h", 5400),
        (" 10 s ", 10),
        (45, 45),
        (0.25, 0.25),
        ("0s", 0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "1w", "-5s", -1, True, None, "", "1h30m", [1]])
def test_not_durations(text: Any) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (30, "30s"), (60, "1m"), (90, "90s"), (3600, "1h"), (400 * 86400, "400d")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9464", ("::1", 9464)),
        ("[::]:9000", ("::", 9000)),
        ("monitor.internal:9464", ("monitor.internal", 9464)),
        (9500, ("127.0.0.1", 9500)),
        ("9500", ("127.0.0.1", 9500)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_listen_addresses(text: Any, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize(
    "text", ["::1:9464", "[nope]:80", "host", "host:70000", "http://h:80", ":80", True, 1.5]
)
def test_not_listen_addresses(text: Any) -> None:
    assert parse_listen(text) is None


# -- good files ----------------------------------------------------------------------------


def test_one_target_and_every_default(here: Path) -> None:
    config = load(ONE)
    (target,) = config.targets
    assert (target.name, target.url) == ("gpu-1.example.com", "https://gpu-1.example.com")
    assert target.closed_ports == ()  # as `check --url`: no port probed unless named
    defaults = MonitorConfig(source=Path("monitor.yml"), targets=config.targets)
    assert config == replace(defaults, state_dir=here / "monitor-state")


def test_every_key_is_read(here: Path) -> None:
    (here / "ca.pem").write_text("a CA\n")
    config = load(
        f"""\
listen: "[::1]:9500"
state_dir: state
title: Our GPUs
refresh: 10s
targets:
  - name: gpu-1
    url: https://gpu-1.example.com/
    required_models: [llama3.2:1b, {{name: qwen2.5:7b, digest: sha256:845dbda0ea48}}]
    chat_model: qwen2.5:7b
    closed_ports: [11434]
    open_ports: [443]
    public_access: open
    check_write_endpoints: false
    expect_gpu: true
    api_key: {KEY}
    ca_file: ca.pem
    tls_warn_days: 30
    tls_fail_days: 7
    http_url: http://gpu-1.example.com/
    require_hsts: false
    port_forwarder: true
    latency_thresholds: {{first_token_ms: [4000, 20000], tokens_per_s: [10, 2]}}
checks: [models, connectivity]
intervals: {{connectivity: 10s, chat: 2m}}
jitter: 0.2
concurrency: 4
timeouts: {{connect: 1s, read: 20s, check: 1m}}
shutdown_grace: 0
retention: 1d
rollup_retention: 30d
alerts:
  failure_threshold: 5
  success_threshold: 1
  window: 10
  min_success_rate: 0.75
  warn: false
  send_on_resolved: false
  reminder: null
  retry: 500ms
receivers:
  - name: ops
    type: slack
    url: {HOOK}
  - name: am
    type: alertmanager
    url: http://127.0.0.1:9093
    headers: {{Authorization: {HEADER}}}
    timeout: 3s
gpu: "off"
"""
    )
    (target,) = config.targets
    assert target.name == "gpu-1"
    assert target.url == "https://gpu-1.example.com"
    assert target.required_models == (
        RequiredModel(name="llama3.2:1b"),
        RequiredModel(name="qwen2.5:7b", digest="sha256:845dbda0ea48"),
    )
    assert target.model_for_chat == "qwen2.5:7b"
    assert (target.closed_ports, target.open_ports) == ((11434,), (443,))
    assert target.public_access is PublicAccess.OPEN
    assert (target.check_write_endpoints, target.expect_gpu, target.port_forwarder) == (
        False,
        True,
        True,
    )
    assert target.api_key == KEY
    assert target.tls.ca_file == str(here / "ca.pem")
    assert (target.tls.warn_days, target.tls.fail_days) == (30, 7)
    assert (target.tls.http_url, target.tls.require_hsts) == ("http://gpu-1.example.com", False)
    assert target.latency.first_token_ms == Threshold(warn=4000, fail=20000)
    assert target.latency.tokens_per_s == Threshold(warn=10, fail=2)
    assert target.latency.connect_ms == Threshold(warn=500, fail=2000)  # a default kept
    assert (config.listen_host, config.listen_port) == ("::1", 9500)
    assert config.state_dir == here / "state"
    assert (config.title, config.refresh_s) == ("Our GPUs", 10)
    assert config.checks == ("connectivity", "models")  # the checks' own order
    assert config.intervals == {
        "connectivity": 10.0,
        "tls": 3600.0,
        "models": 60.0,
        "chat": 120.0,
        "auth": 300.0,
        "exposure": 300.0,
    }
    assert (config.jitter, config.concurrency, config.shutdown_grace_s) == (0.2, 4, 0.0)
    probe = config.probe
    assert (probe.connect_timeout_s, probe.read_timeout_s, probe.check_timeout_s) == (1, 20, 60)
    assert (config.retention_s, config.rollup_retention_s) == (86400, 30 * 86400)
    assert config.alerts == AlertPolicy(
        failure_threshold=5,
        success_threshold=1,
        window=10,
        min_success_rate=0.75,
        warn=False,
        send_on_resolved=False,
        reminder_s=None,
        retry_s=0.5,
    )
    ops, am = config.receivers
    assert (ops.name, ops.kind, ops.url, dict(ops.headers)) == ("ops", "slack", HOOK, {})
    assert (am.kind, dict(am.headers), am.timeout_s) == (
        "alertmanager",
        {"Authorization": HEADER},
        3,
    )
    assert config.gpu == "off"
    # secrets stay out of reprs and the summary
    for text in (repr(config), describe(config)):
        assert HOOK not in text and HEADER not in text and KEY not in text


def test_a_bare_port_and_state_directory_from_systemd(here: Path) -> None:
    config = load("listen: 9600\n" + ONE, {"STATE_DIRECTORY": "/var/lib/ollama-fleet:/other"})
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9600)
    assert config.state_dir == Path("/var/lib/ollama-fleet/monitor")


def test_empty_values_keep_defaults_but_null_turns_reminder_off() -> None:
    config = load("title:\njitter:\nalerts: {reminder: null, retry:}\n" + ONE)
    assert config.title == "Ollama fleet status" and config.jitter == 0.1
    assert config.alerts.reminder_s is None and config.alerts.retry_s == 30.0


def test_api_key_from_the_environment() -> None:
    config = load(ONE + "    api_key_env: GPU_KEY\n", {"GPU_KEY": KEY})
    assert config.targets[0].api_key == KEY


def test_a_target_means_what_it_means_for_check(here: Path) -> None:
    """The same variables as an inventory host give the same Target (name and groups aside)."""
    (here / "ca.pem").write_text("a CA\n")
    values = """\
      required_models: [llama3.2:1b, {name: qwen2.5:7b, digest: sha256:845d}]
      closed_ports: [11434, 8080]
      open_ports: [443]
      public_access: open
      expect_gpu: true
      tls_warn_days: 14
      tls_fail_days: 2
      require_hsts: false
      latency_thresholds: {connect_ms: [100, 900]}
"""
    (here / "inv.yml").write_text(
        "all:\n  hosts:\n    gpu-1:\n      public_url: https://gpu-1.example.com\n"
        "      tls_ca_file: ca.pem\n" + values
    )
    (expected,) = targets_from_inventory(load_inventory(here / "inv.yml"))
    monitored = values.replace("\n      ", "\n    ").replace("      ", "    ", 1)
    config = load(
        "targets:\n  - name: gpu-1\n    url: https://gpu-1.example.com\n    ca_file: ca.pem\n"
        + monitored
    )
    assert config.targets == (replace(expected, groups=()),)


def test_inventory_and_targets_together(here: Path) -> None:
    (here / "inventories").mkdir()
    (here / "inventories" / "prod.yml").write_text(
        "all:\n  hosts:\n    gpu-1:\n      public_url: https://gpu-1.example.com\n    mon-1: {}\n"
    )
    config = load("inventory: inventories/prod.yml\n" + ONE.replace("gpu-1", "gpu-2"))
    assert [t.name for t in config.targets] == ["gpu-1", "gpu-2.example.com"]
    assert config.targets[0].closed_ports == (11434,)  # an inventory host's default


def test_vault_values_open_with_the_files_password_file(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)
    password = VaultPassword("monitor-vault-pass")
    (here / "pass.txt").write_text(password.secret + "\n")
    (here / "pass.txt").chmod(0o600)
    block = "".join(f"      {line}\n" for line in encrypt_text(HOOK, password).splitlines())
    text = (
        "vault_password_file: pass.txt\n"
        + ONE
        + "receivers:\n  - name: ops\n    type: webhook\n    url: !vault |\n"
        + block
    )
    assert load(text).receivers[0].url == HOOK
    # a vault value where a number belongs: the problem never shows the plaintext
    (line,) = problems(
        text.replace("receivers:\n  - name: ops\n    type: webhook\n    url", "jitter")
    )
    assert line == (
        "monitor.yml:4: jitter: expected a number from 0 to 0.5, got a secret value (not shown)"
    )
    assert HOOK not in line


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE, environ=NO_ENV)
    assert {t.name for t in config.targets} == {"gpu-1", "gpu-2", "gw-1", "partner-llm"}
    assert [r.name for r in config.receivers] == ["ops"]


# -- bad files: the exact problems ---------------------------------------------------------

BAD = [
    ("", ["monitor.yml: expected a mapping of settings (listen:, targets:, ...) at the top"]),
    (
        "- a\n",
        ["monitor.yml:1: expected a mapping of settings (listen:, targets:, ...) at the top"],
    ),
    ("title: x\n", ["monitor.yml: no targets: list them under targets:, or name an inventory:"]),
    ("targets: []\n", ["monitor.yml: no targets: list them under targets:, or name an inventory:"]),
    ("targets: [\n", None),  # invalid YAML: named by line, checked below
    (ONE + "listn: 9464\n", ["monitor.yml:3: listn: unknown key; did you mean listen?"]),
    (ONE + "bogus: 1\n", ["monitor.yml:3: bogus: unknown key (see docs/monitor.md)"]),
    (ONE + "title: a\ntitle: b\n", ["monitor.yml:4: title: duplicate key; first at line 3"]),
    (
        ONE + "listen: 1.2.3.4\n",
        ["monitor.yml:3: listen: '1.2.3.4' is not HOST:PORT ([IPv6]:PORT) or a port number"],
    ),
    (
        ONE + "listen: 70000\n",
        ["monitor.yml:3: listen: 70000 is not HOST:PORT ([IPv6]:PORT) or a port number"],
    ),
    (
        ONE + "refresh: 500ms\n",
        ["monitor.yml:3: refresh: '500ms' is too short; it must be at least 1s"],
    ),
    (ONE + "title: 5\n", ["monitor.yml:3: title: expected a non-empty string, got 5"]),
    (
        ONE + "intervals:\n  chat: 5 minutes\n",
        ["monitor.yml:4: intervals.chat: '5 minutes' is not a duration (e.g. 30s, 5m, 1h)"],
    ),
    (
        ONE + "intervals:\n  chatt: 5m\n",
        ["monitor.yml:4: intervals.chatt: unknown key; did you mean chat?"],
    ),
    (
        ONE + "intervals: {tls: 0}\n",
        ["monitor.yml:3: intervals.tls: 0 is too short; it must be above 0"],
    ),
    (
        ONE + "intervals: [30s]\n",
        ["monitor.yml:3: intervals: expected a mapping of connectivity, tls, models..."],
    ),
    (
        ONE + "checks: [conectivity]\n",
        ["monitor.yml:3: checks: unknown check 'conectivity'; did you mean connectivity?"],
    ),
    (ONE + "checks: [tls, tls]\n", ["monitor.yml:3: checks: 'tls' is listed twice"]),
    (
        ONE + "checks: []\n",
        [
            "monitor.yml:3: checks: expected a list of connectivity, tls, models, chat, auth, "
            "exposure"
        ],
    ),
    (ONE + "jitter: 0.9\n", ["monitor.yml:3: jitter: expected a number from 0 to 0.5, got 0.9"]),
    (ONE + "jitter: true\n", ["monitor.yml:3: jitter: expected a number from 0 to 0.5, got True"]),
    (
        ONE + "concurrency: 0\n",
        ["monitor.yml:3: concurrency: expected a whole number from 1 to 1024, got 0"],
    ),
    (
        ONE + "timeouts: {check: 5s}\n",
        [
            "monitor.yml:3: timeouts.check: 5s is shorter than timeouts.read (15s): it could "
            "never wait that long"
        ],
    ),
    (
        ONE + "timeouts:\n  read: 1m\n",
        [
            "monitor.yml:4: timeouts.read: 1m is longer than timeouts.check (30s), which bounds "
            "the whole check"
        ],
    ),
    (
        ONE + "timeouts: {conect: 1s}\n",
        ["monitor.yml:3: timeouts.conect: unknown key; did you mean connect?"],
    ),
    (
        ONE + "rollup_retention: 1d\n",
        [
            "monitor.yml:3: rollup_retention: the hourly roll-ups must be kept at least as "
            "long as the raw samples (2d)"
        ],
    ),
    (
        ONE + "retention: 500d\n",
        [
            "monitor.yml:3: retention: the hourly roll-ups must be kept at least as "
            "long as the raw samples (500d)"
        ],
    ),
    (
        ONE + "shutdown_grace: -1\n",
        ["monitor.yml:3: shutdown_grace: -1 is not a duration (e.g. 30s, 5m, 1h)"],
    ),
    (ONE + "gpu: on\n", ["monitor.yml:3: gpu: expected one of auto, off; got True"]),
    (
        ONE
        + "alerts:\n  failure_threshold: 0\n  min_success_rate: 0\n  warn: yes please\n  remind: "
        "1h\n",
        [
            "monitor.yml:4: alerts.failure_threshold: expected a whole number from 1 to 1000, "
            "got 0",
            "monitor.yml:5: alerts.min_success_rate: expected a number above 0 to 1, got 0",
            "monitor.yml:6: alerts.warn: expected true or false, got 'yes please'",
            "monitor.yml:7: alerts.remind: unknown key; did you mean reminder?",
        ],
    ),
    (
        ONE + "receivers:\n  - {name: ops, type: slak, url: https://h.example/x}\n"
        "  - {name: ops, type: webhook}\n  - nope\n",
        [
            "monitor.yml:4: receivers[0].type: expected one of webhook, slack, alertmanager; got "
            "'slak'",
            "monitor.yml:5: receivers[1]: no url; a receiver has name, type and url",
            "monitor.yml:5: receivers[1].name: 'ops' is the name of another receiver too (line 4)",
            "monitor.yml:6: receivers[2]: expected a mapping of name, type, url...",
        ],
    ),
    (
        ONE + "receivers: {ops: x}\n",
        ["monitor.yml:3: receivers: expected a list of receivers (- name: ...)"],
    ),
    (
        ONE + "receivers:\n  - {name: a, type: webhook, url: x, headrs: {}}\n",
        [
            "monitor.yml:4: receivers[0].headrs: unknown key; did you mean headers?",
            "monitor.yml:4: receivers[0].url: expected an http(s) URL (the value is not shown: "
            "it is a secret)",
        ],
    ),
    (
        "targets:\n  - url: ftp://x\n  - {url: https://a.example, public_access: public}\n"
        "  - {name: x}\n  - {url: https://b.example, tls_fail_days: 30, ca_file: no.pem}\n"
        "  - url: https://a.example\n    tls_warn: 3\n  - url: https://c.example\n"
        "  - url: https://c.example\n  - {name: c.example, url: https://d.example}\n",
        [
            "monitor.yml:2: targets[0].url: invalid URL 'ftp://x': expected http(s)://HOST[:PORT]",
            "monitor.yml:3: targets[1].public_access: expected 'closed' or 'open', got 'public'",
            "monitor.yml:4: targets[2]: no url; a target needs one (url: https://...)",
            "monitor.yml:5: targets[3].tls_fail_days: 30 exceeds tls_warn_days (21)",
            "monitor.yml:5: targets[3].ca_file: no such file '{here}/no.pem'",
            "monitor.yml:7: targets[4].tls_warn: unknown key; did you mean tls_warn_days?",
            "monitor.yml:9: targets[6].name: target 'c.example' is listed twice (also line 8); "
            "give each a name",
            "monitor.yml:10: targets[7].name: target 'c.example' is listed twice (also line 8)",
        ],
    ),
    (
        ONE + "    api_key_env: NOT_SET_HERE\n",
        ["monitor.yml:3: targets[0].api_key_env: environment variable NOT_SET_HERE is not set"],
    ),
    (
        ONE + "    api_key: k\n    api_key_env: K\n",
        ["monitor.yml:4: targets[0].api_key_env: give api_key or api_key_env, not both"],
    ),
    (
        ONE + "    required_models: [llama3.2:1b, Llama3.2:1b]\n",
        [
            "monitor.yml:3: targets[0].required_models: 'llama3.2:1b' and 'Llama3.2:1b' are the "
            "same model (listed twice)"
        ],
    ),
    ("inventory: missing.yml\n", ["missing.yml: no such inventory file"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_configs(here: Path, text: str, expected: list[str] | None) -> None:
    found = problems(text)
    if expected is None:
        (line,) = found
        assert re.fullmatch(r"monitor\.yml:2: invalid YAML \(column \d+\): .+", line), line
        return
    assert found == [line.format(here=here) for line in expected]


def test_inventory_problems_name_the_inventorys_lines(here: Path) -> None:
    (here / "inv.yml").write_text("all:\n  hosts:\n    gpu-1:\n      public_url: ftp://x\n")
    assert problems("inventory: inv.yml\n") == [
        "inv.yml:4: public_url: invalid URL 'ftp://x': expected http(s)://HOST[:PORT]"
    ]
    (here / "inv.yml").write_text("all:\n  hosts:\n    mon-1: {}\n")
    assert problems("inventory: inv.yml\n") == [
        "monitor.yml:1: inventory: inv.yml: no host has a public_url to check"
    ]
    (here / "inv.yml").write_text("all:\n  hosts:\n    gpu-1:\n      public_url: https://g\n")
    assert problems("inventory: inv.yml\ntargets:\n  - {name: gpu-1, url: https://h}\n") == [
        "monitor.yml:3: targets[0].name: target 'gpu-1' is listed twice "
        "(also a host of the inventory inv.yml)"
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"receivers:\n  - {{name: a, type: webhook, url: '{HOOK} x'}}\n",
        f"receivers:\n  - {{name: a, type: webhook, url: {HOOK}, headers: {{X: [{HEADER}]}}}}\n",
        f'receivers:\n  - {{name: a, type: webhook, url: {HOOK}, headers: {{X: "{HEADER}\\n"}}}}\n',
        f"targets:\n  - {{url: https://h, api_key: [{KEY}]}}\n",
        f'targets:\n  - {{url: https://h, api_key: "{KEY}\\n"}}\n',
    ],
)
def test_secrets_are_never_in_messages(text: str) -> None:
    found = "\n".join(problems(ONE.replace("gpu-1", "gpu-9") + text.replace("targets:\n", "")))
    assert "not shown" in found
    for secret in (HOOK, HEADER, KEY, "hook-secret", "header-secret", "target-secret"):
        assert secret not in found


@pytest.mark.parametrize("value", ["\u201cheader-secret-77aa\u201d", "header-secret-\u00e9t\u00e9"])
def test_a_header_value_httpx_cannot_send_is_refused_unquoted(value: str) -> None:
    # a token pasted with curly quotes or an accent: httpx sends only ASCII header values
    headers = f'{{X-Token: "{value}"}}'
    text = f"receivers:\n  - {{name: a, type: webhook, url: {HOOK}, headers: {headers}}}\n"
    assert problems(ONE + text) == [
        "monitor.yml:4: receivers[0].headers.X-Token: only printable ASCII can be sent in a "
        "header, no curly quotes (the value is not shown: it is a secret)"
    ]


# -- the quick start -----------------------------------------------------------------------


def test_config_from_inventory(here: Path) -> None:
    (here / "inv.yml").write_text(
        "all:\n  hosts:\n    gpu-1:\n      public_url: https://gpu-1.example.com\n"
        "    gpu-2:\n      public_url: https://gpu-2.example.com\n    mon-1: {}\n"
    )
    inventory = here / "inv.yml"
    config = config_from_inventory(inventory, environ=NO_ENV)
    assert config.targets == targets_from_inventory(load_inventory(inventory))
    assert config == MonitorConfig(
        source=inventory, targets=config.targets, state_dir=here / "monitor-state"
    )
    some = config_from_inventory(inventory, limit=["gpu-2"], state_dir=here / "s", environ=NO_ENV)
    assert ([t.name for t in some.targets], some.state_dir) == (["gpu-2"], here / "s")
    with pytest.raises(ConfigError, match="no host that --limit selects has a public_url"):
        config_from_inventory(inventory, limit=["mon-1"], environ=NO_ENV)
    with pytest.raises(InventoryError):
        config_from_inventory(here / "none.yml", environ=NO_ENV)


# -- the documentation's table is what load_config accepts ---------------------------------


def documented_keys() -> dict[str, str]:
    """{key: default} of the configuration table in docs/monitor.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Configuration: monitor.yml", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert rows, "no table in the configuration section"
    return {key: default.strip() for key, default in rows}


def test_the_documented_keys_are_the_accepted_keys() -> None:
    accepted = {
        f"{section}.{key}" if section else key for section, keys in SECTIONS.items() for key in keys
    }
    assert "targets[].url" in accepted and "intervals.chat" in accepted
    assert set(documented_keys()) == accepted


WHOLE = ("failure_threshold", "success_threshold", "window")


def test_the_documented_defaults_are_the_defaults() -> None:
    config = MonitorConfig(source=Path("x"), targets=())
    actual: dict[str, Any] = {
        "listen": f"{config.listen_host}:{config.listen_port}",
        "title": config.title,
        "refresh": config.refresh_s,
        "jitter": config.jitter,
        "concurrency": config.concurrency,
        "timeouts.connect": config.probe.connect_timeout_s,
        "timeouts.read": config.probe.read_timeout_s,
        "timeouts.check": config.probe.check_timeout_s,
        "shutdown_grace": config.shutdown_grace_s,
        "retention": config.retention_s,
        "rollup_retention": config.rollup_retention_s,
        "gpu": config.gpu,
        "alerts.reminder": config.alerts.reminder_s,
        "alerts.retry": config.alerts.retry_s,
        "alerts.min_success_rate": config.alerts.min_success_rate,
        **{f"intervals.{name}": config.intervals[name] for name in CHECK_NAMES},
        **{f"alerts.{name}": getattr(config.alerts, name) for name in (*WHOLE, "warn")},
        "alerts.send_on_resolved": config.alerts.send_on_resolved,
    }
    documented = documented_keys()
    for key, value in actual.items():
        shown = documented[key].strip("`")
        if isinstance(value, bool):
            assert shown == str(value).lower(), key
        elif value is None:
            assert shown == "null", key
        elif isinstance(value, str):
            assert shown == value, key
        elif key in ("jitter", "concurrency") or key in {f"alerts.{k}" for k in WHOLE}:
            assert float(shown) == value, key
        else:
            assert parse_duration(shown) == value, key
