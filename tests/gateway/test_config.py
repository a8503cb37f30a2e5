"""gateway.yml into a GatewayConfig: good files become records, bad ones exact one-line problems.

Pure: files written into tmp_path, no servers. Messages are read as an operator sees them
(`gateway.yml:LINE: KEY: problem`), and keys and their hashes are proven absent from them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.gateway.config import SECTIONS, describe, load_config
from ollama_fleet.gateway.settings import (
    Balancing,
    Breaker,
    GatewayConfig,
    Health,
    KeySpec,
    Limits,
    NodeSpec,
    Role,
    Strategy,
    Timeouts,
)
from ollama_fleet.inventory_errors import InventoryError
from ollama_fleet.monitor.durations import parse_duration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gateway.md"
EXAMPLE = ROOT / "docs" / "gateway.example.yml"

KEY = "ofk_config-test-secret-8d2e"  # a key someone pasted where its hash belongs
HASH = hashlib.sha256(b"alice's key").hexdigest()
HASH_2 = hashlib.sha256(b"bob's key").hexdigest()
NODE = "nodes:\n  - {name: gpu-1, url: http://127.0.0.1:11434}\n"


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path, so files are named as written (`gateway.yml:3: ...`)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(text: str) -> GatewayConfig:
    Path("gateway.yml").write_text(text)
    return load_config(Path("gateway.yml"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return str(caught.value).splitlines()


# -- good files ----------------------------------------------------------------------------


def test_one_node_and_every_default() -> None:
    config = load(NODE)
    node = NodeSpec(name="gpu-1", url="http://127.0.0.1:11434")
    assert config == GatewayConfig(nodes=(node,), source="gateway.yml")


def test_every_key_is_read() -> None:
    config = load(
        f"""\
listen: "[::1]:9000"
nodes:
  - name: gpu-1
    url: http://10.0.0.11:11434/
    weight: 3
    max_parallel: 2
    queue: 0
  - name: gpu_2.eu-west
    url: https://[fd00::2]:443
keys:
  - name: alice
    sha256: sha256:{HASH.upper()}
    role: admin
    models: ["llama3*", "qwen2.5:7b"]
    rpm: 60
    tpm: 100000
    max_concurrent: 4
    expires: 2027-01-01
  - name: bob
    sha256: {HASH_2}
    expires: 2027-01-01T12:30:00+02:00
  - name: carol
    sha256: "{"0" * 64}"
    role: readonly
    expires: "2027-06-01T08:00:00"
limits: {{rpm: 600, tpm: null, completion_estimate: 0}}
balancing: {{strategy: hash, hash_header: X-Conversation, prefer_loaded: false, queue_timeout: 2m}}
health: {{interval: 5s, timeout: 2s, max_backoff: 1h, models_refresh: 1m}}
breaker: {{failures: 5, cooldown: 500ms}}
timeouts: {{connect: 1s, first_byte: 10m, read: 90}}
access_log: false
"""
    )
    assert config == GatewayConfig(
        listen=("::1", 9000),
        nodes=(
            NodeSpec(name="gpu-1", url="http://10.0.0.11:11434", weight=3, max_parallel=2, queue=0),
            NodeSpec(name="gpu_2.eu-west", url="https://[fd00::2]:443"),
        ),
        keys=(
            KeySpec(
                name="alice",
                sha256=HASH,
                role=Role.ADMIN,
                models=("llama3*", "qwen2.5:7b"),
                rpm=60,
                tpm=100000,
                max_concurrent=4,
                expires=datetime(2027, 1, 1, tzinfo=UTC),
            ),
            KeySpec(name="bob", sha256=HASH_2, expires=datetime(2027, 1, 1, 10, 30, tzinfo=UTC)),
            KeySpec(
                name="carol",
                sha256="0" * 64,
                role=Role.READONLY,
                expires=datetime(2027, 6, 1, 8, tzinfo=UTC),
            ),
        ),
        limits=Limits(rpm=600, tpm=None, completion_estimate=0),
        balancing=Balancing(
            strategy=Strategy.HASH,
            hash_header="x-conversation",
            prefer_loaded=False,
            queue_timeout_s=120,
        ),
        health=Health(interval_s=5, timeout_s=2, max_backoff_s=3600, models_refresh_s=60),
        breaker=Breaker(failures=5, cooldown_s=0.5),
        timeouts=Timeouts(connect_s=1, first_byte_s=600, read_s=90),
        access_log=False,
        source="gateway.yml",
    )


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy(strategy: Strategy) -> None:
    config = load(NODE + f"balancing: {{strategy: {strategy.value}}}\n")
    assert config.balancing.strategy is strategy


def test_the_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.nodes and config.keys
    assert {spec.role for spec in config.keys} == set(Role)


def test_describe_names_nodes_and_key_names_never_hashes() -> None:
    config = load(
        NODE
        + "  - {name: gpu-2, url: 'http://[::1]:11435'}\n"
        + f"keys:\n  - {{name: alice, sha256: {HASH}}}\n"
        + f"  - {{name: root, sha256: {HASH_2}, role: admin}}\nlisten: '[::]:8081'\n"
    )
    line = describe(config)
    assert line == (
        "gateway.yml: ok: 2 node(s) (gpu-1, gpu-2), 2 key(s) (1 user, 1 admin), "
        "strategy least-connections; sessions in SQLite (default file); limits in memory; "
        "listen [::]:8081"
    )
    assert HASH not in line


# -- bad files: every problem, where it is -------------------------------------------------


HASHES = f"keys:\n  - {{name: alice, sha256: {HASH}}}\n"
BAD = [
    (
        "",
        ["gateway.yml: expected a mapping of settings (listen:, nodes:, keys:, ...) at the top"],
    ),
    (
        "- a\n",
        [
            (
                "gateway.yml:1: expected a mapping of settings (listen:, nodes:, "
                "keys:, ...) at the top"
            )
        ],
    ),
    (
        "nodes: [\n",
        [
            (
                "gateway.yml:2: invalid YAML (column 1): expected the node content, "
                "but found '<stream end>'"
            )
        ],
    ),
    (
        "listen: 127.0.0.1:8080\n",
        [
            (
                "gateway.yml: no nodes: list at least one under nodes: (- name: "
                "gpu-1, url: http://HOST:PORT)"
            )
        ],
    ),
    (
        "nodes: []\n",
        [
            (
                "gateway.yml:1: no nodes: list at least one under nodes: (- name: "
                "gpu-1, url: http://HOST:PORT)"
            )
        ],
    ),
    (
        "nodes: {gpu-1: x}\n",
        ["gateway.yml:1: nodes: expected a list of nodes (- name: ..., url: ...)"],
    ),
    (NODE + "nodse: 1\n", ["gateway.yml:3: nodse: unknown key; did you mean nodes?"]),
    (NODE + "bogus: 1\n", ["gateway.yml:3: bogus: unknown key (see docs/gateway.md)"]),
    (
        NODE + "listen: here\n",
        ["gateway.yml:3: listen: 'here' is not HOST:PORT ([IPv6]:PORT) or a port number"],
    ),
    (
        NODE + "access_log: yes please\n",
        ["gateway.yml:3: access_log: expected true or false, got 'yes please'"],
    ),
    ("nodes:\n  -\n", ["gateway.yml:2: nodes[0]: empty; each has name and url"]),
    (
        "nodes:\n  - {url: http://h:1}\n",
        ["gateway.yml:2: nodes[0]: no name; each has name and url"],
    ),
    (
        "nodes:\n  - {name: a, url: http://h:1, wieght: 2}\n",
        ["gateway.yml:2: nodes[0].wieght: unknown key; did you mean weight?"],
    ),
    (
        "nodes:\n  - {name: gpu 1, url: http://h:1}\n",
        [
            (
                "gateway.yml:2: nodes[0].name: expected a name of letters, digits, "
                "'.', '_' and '-', got 'gpu 1'"
            )
        ],
    ),
    (
        NODE + "  - {name: gpu-1, url: http://h:1}\n",
        ["gateway.yml:3: nodes[1].name: 'gpu-1' is the name of another node too (line 2)"],
    ),
    (
        "nodes:\n  - {name: a, url: ftp://h:1}\n",
        ["gateway.yml:2: nodes[0].url: expected an http(s)://HOST:PORT URL, got 'ftp://h:1'"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://:1'}\n",
        ["gateway.yml:2: nodes[0].url: expected an http(s)://HOST:PORT URL, got 'http://:1'"],
    ),
    (
        "nodes:\n  - {name: a, url: 11434}\n",
        ["gateway.yml:2: nodes[0].url: expected an http(s)://HOST:PORT URL, got 11434"],
    ),
    (
        "nodes:\n  - {name: a, url: http://h}\n",
        ["gateway.yml:2: nodes[0].url: 'http://h' has no port; write it, e.g. http://HOST:11434"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:99999'}\n",
        ["gateway.yml:2: nodes[0].url: 'http://h:99999' has no valid port"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1/ollama'}\n",
        [
            (
                "gateway.yml:2: nodes[0].url: 'http://h:1/ollama' has a path or "
                "query; a node's URL is only http(s)://HOST:PORT"
            )
        ],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1?x=1'}\n",
        [
            (
                "gateway.yml:2: nodes[0].url: 'http://h:1?x=1' has a path or query; "
                "a node's URL is only http(s)://HOST:PORT"
            )
        ],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1', weight: 0}\n",
        ["gateway.yml:2: nodes[0].weight: expected a whole number of at least 1, got 0"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1', max_parallel: 1.5}\n",
        ["gateway.yml:2: nodes[0].max_parallel: expected a whole number of at least 1, got 1.5"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1', queue: -1}\n",
        ["gateway.yml:2: nodes[0].queue: expected a whole number of at least 0, got -1"],
    ),
    (
        "nodes:\n  - {name: a, url: 'http://h:1', weight: true}\n",
        ["gateway.yml:2: nodes[0].weight: expected a whole number of at least 1, got True"],
    ),
    (
        NODE + "keys:\n  - {sha256: " + HASH + "}\n",
        ["gateway.yml:4: keys[0]: no name; each has name and sha256"],
    ),
    (
        NODE + "keys:\n  - {name: a}\n",
        ["gateway.yml:4: keys[0]: no sha256; each has name and sha256"],
    ),
    (
        NODE + HASHES + f"  - {{name: alice, sha256: {HASH_2}}}\n",
        ["gateway.yml:5: keys[1].name: 'alice' is the name of another key too (line 4)"],
    ),
    (
        NODE + HASHES + f"  - {{name: bob, sha256: 'sha256:{HASH.upper()}'}}\n",
        [
            (
                "gateway.yml:5: keys[1].sha256: key 'bob' has the same hash as key "
                "'alice'; each needs its own"
            )
        ],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, role: root}}\n",
        ["gateway.yml:4: keys[0].role: expected one of admin, user, readonly; got 'root'"],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, models: []}}\n",
        [
            (
                "gateway.yml:4: keys[0].models: expected a non-empty list of model "
                'globs such as ["llama3*"], got []'
            )
        ],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, models: llama3}}\n",
        [
            (
                "gateway.yml:4: keys[0].models: expected a non-empty list of model "
                "globs such as [\"llama3*\"], got 'llama3'"
            )
        ],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, models: ['']}}\n",
        ["gateway.yml:4: keys[0].models: expected non-empty model globs, got '' in the list"],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, rpm: 0}}\n",
        ["gateway.yml:4: keys[0].rpm: expected a whole number of at least 1, got 0"],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, tpm: many}}\n",
        ["gateway.yml:4: keys[0].tpm: expected a whole number of at least 1, got 'many'"],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, max_concurrent: -2}}\n",
        ["gateway.yml:4: keys[0].max_concurrent: expected a whole number of at least 1, got -2"],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, expires: soon}}\n",
        [
            (
                "gateway.yml:4: keys[0].expires: expected a date (2027-01-01) or an "
                "ISO datetime, got 'soon'"
            )
        ],
    ),
    (
        NODE + f"keys:\n  - {{name: a, sha256: {HASH}, expires: 2027}}\n",
        [
            (
                "gateway.yml:4: keys[0].expires: expected a date (2027-01-01) or an "
                "ISO datetime, got 2027"
            )
        ],
    ),
    (
        NODE + "limits: {rpm: 0, tpm: 1.5, completion_estimate: -1}\n",
        [
            ("gateway.yml:3: limits.rpm: expected a whole number of at least 1, got 0"),
            ("gateway.yml:3: limits.tpm: expected a whole number of at least 1, got 1.5"),
            (
                "gateway.yml:3: limits.completion_estimate: expected a whole number "
                "of at least 0, got -1"
            ),
        ],
    ),
    (NODE + "limits: {rmp: 1}\n", ["gateway.yml:3: limits.rmp: unknown key; did you mean rpm?"]),
    (
        NODE + "limits: 5\n",
        ["gateway.yml:3: limits: expected a mapping of rpm, tpm, completion_estimate..."],
    ),
    (
        NODE + "balancing: {strategy: leastconn}\n",
        [
            (
                "gateway.yml:3: balancing.strategy: expected one of "
                "least-connections, round-robin, weighted, random, hash; got "
                "'leastconn'"
            )
        ],
    ),
    (
        NODE + "balancing: {hash_header: 'x session'}\n",
        [
            (
                "gateway.yml:3: balancing.hash_header: expected an HTTP header name "
                "such as x-session-id, got 'x session'"
            )
        ],
    ),
    (
        NODE + "balancing: {prefer_loaded: 1}\n",
        ["gateway.yml:3: balancing.prefer_loaded: expected true or false, got 1"],
    ),
    (
        NODE + "balancing: {queue_timeout: 0s}\n",
        ["gateway.yml:3: balancing.queue_timeout: '0s' is too short; it must be above 0"],
    ),
    (
        NODE + "health: {interval: 5 minutes}\n",
        ["gateway.yml:3: health.interval: '5 minutes' is not a duration (e.g. 30s, 5m, 1h)"],
    ),
    (
        NODE + "health: {interval: 10m}\n",
        [
            (
                "gateway.yml:3: health.interval: health.max_backoff (5m) must be at "
                "least health.interval (10m)"
            )
        ],
    ),
    (
        NODE + "health: {max_backoff: 5s}\n",
        [
            (
                "gateway.yml:3: health.max_backoff: health.max_backoff (5s) must be "
                "at least health.interval (10s)"
            )
        ],
    ),
    (
        NODE + "health: {timeout: -1, models_refresh: x}\n",
        [
            ("gateway.yml:3: health.timeout: -1 is not a duration (e.g. 30s, 5m, 1h)"),
            ("gateway.yml:3: health.models_refresh: 'x' is not a duration (e.g. 30s, 5m, 1h)"),
        ],
    ),
    (
        NODE + "breaker: {failures: 0, cooldown: soon}\n",
        [
            ("gateway.yml:3: breaker.failures: expected a whole number of at least 1, got 0"),
            ("gateway.yml:3: breaker.cooldown: 'soon' is not a duration (e.g. 30s, 5m, 1h)"),
        ],
    ),
    (
        NODE + "timeouts: {connect: 0, first_byt: 1m}\n",
        [
            ("gateway.yml:3: timeouts.first_byt: unknown key; did you mean first_byte?"),
            "gateway.yml:3: timeouts.connect: 0 is too short; it must be above 0",
        ],
    ),
    (NODE + "nodes: []\n", ["gateway.yml:3: nodes: duplicate key; first at line 1"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_files(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_every_problem_of_a_file_at_once() -> None:
    found = problems(
        "nodes:\n  - {name: a, url: http://h}\n  - {name: b, url: 'http://h:1', weight: 0}\n"
        "balancing: {strategy: x}\n"
    )
    assert [line.split(": ")[1] for line in found] == [
        "nodes[0].url",
        "nodes[1].weight",
        "balancing.strategy",
    ]


def test_a_file_that_is_not_there() -> None:
    with pytest.raises(InventoryError, match=r"^nope.yml: no such gateway config$"):
        load_config(Path("nope.yml"))


# -- secrets: a key, a hash, a URL's password are never shown ----------------------------


@pytest.mark.parametrize(
    "value",
    [KEY, f"sha256:{KEY}", HASH[:-1], HASH + "0", f"sha256:{HASH[:-2]}zz", "0x" + HASH[2:]],
)
def test_a_key_where_its_hash_belongs_is_refused_unshown(value: str) -> None:
    (line,) = problems(NODE + f"keys:\n  - {{name: a, sha256: '{value}'}}\n")
    assert line == (
        "gateway.yml:4: keys[0].sha256: expected 64 hex digits, or sha256: and 64 hex digits "
        "(the value is not shown); a key in plain text does not belong here: hash it with "
        "`ollama-fleet gateway key hash`"
    )
    assert value not in line and value[4:-4] not in line


def test_a_key_written_as_key_is_refused_unshown() -> None:
    (line,) = problems(NODE + f"keys:\n  - name: a\n    sha256: {HASH}\n    key: {KEY}\n")
    assert line == (
        "gateway.yml:6: keys[0].key: gateway.yml holds only hashes (the value is not shown): "
        "write sha256: with the hash from `ollama-fleet gateway key hash` instead"
    )


def test_a_duplicate_hash_names_both_keys_never_the_hash() -> None:
    found = problems(NODE + HASHES + f"  - {{name: bob, sha256: {HASH}}}\n")
    assert found == [
        "gateway.yml:5: keys[1].sha256: key 'bob' has the same hash as key 'alice'; "
        "each needs its own"
    ]
    assert all(HASH not in line for line in found)


def test_a_node_url_with_a_password_is_refused_unshown() -> None:
    (line,) = problems("nodes:\n  - {name: a, url: 'http://ops:hunter2-pw@h:1'}\n")
    assert line == (
        "gateway.yml:2: nodes[0].url: a node's URL must not carry a user name or password "
        "(not shown)"
    )


def test_a_hash_is_not_in_a_records_repr() -> None:
    config = load(NODE + HASHES)
    assert HASH not in repr(config)


# -- the documentation's table is what load_config accepts ---------------------------------


def documented_keys() -> dict[str, str]:
    """{key: default} of the configuration table in docs/gateway.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Configuration: gateway.yml", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert rows, "no table in the configuration section"
    return {key: default.strip() for key, default in rows}


def test_the_documented_keys_are_the_accepted_keys() -> None:
    accepted = {
        f"{section}.{key}" if section else key for section, keys in SECTIONS.items() for key in keys
    }
    assert "nodes[].url" in accepted and "keys[].sha256" in accepted
    assert set(documented_keys()) == accepted


def test_the_documented_defaults_are_the_defaults() -> None:
    config = GatewayConfig()
    node, key = NodeSpec(name="n", url="u"), KeySpec(name="k", sha256="0" * 64)
    host, port = config.listen
    actual: dict[str, Any] = {
        "listen": f"{host}:{port}",
        "access_log": config.access_log,
        **{f"nodes[].{k}": getattr(node, k) for k in ("weight", "max_parallel", "queue")},
        "keys[].role": key.role.value,
        "keys[].models": '["*"]',
        **{f"keys[].{k}": getattr(key, k) for k in ("rpm", "tpm", "max_concurrent", "expires")},
        **{f"limits.{k}": getattr(config.limits, k) for k in ("rpm", "tpm")},
        "limits.completion_estimate": config.limits.completion_estimate,
        "balancing.strategy": config.balancing.strategy.value,
        "balancing.hash_header": config.balancing.hash_header,
        "balancing.prefer_loaded": config.balancing.prefer_loaded,
        "balancing.queue_timeout": config.balancing.queue_timeout_s,
        **{f"health.{k}": getattr(config.health, f"{k}_s") for k in SECTIONS["health"]},
        "breaker.failures": config.breaker.failures,
        "breaker.cooldown": config.breaker.cooldown_s,
        **{f"timeouts.{k}": getattr(config.timeouts, f"{k}_s") for k in SECTIONS["timeouts"]},
    }
    documented = documented_keys()
    for name, value in actual.items():
        shown = documented[name].strip("`")
        if isinstance(value, bool):
            assert shown == str(value).lower(), name
        elif value is None:
            assert shown == "null", name
        elif isinstance(value, str):
            assert shown == value, name
        elif isinstance(value, int):
            assert int(shown) == value, name
        else:
            assert parse_duration(shown) == value, name


def test_a_hash_of_decimal_digits_only_unquoted_is_told_to_be_quoted(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yml"
    digits = "1234567890" * 6 + "1234"
    path.write_text(
        "nodes:\n  - name: a\n    url: http://127.0.0.1:11434\n"
        f"keys:\n  - name: k\n    sha256: {digits}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "gateway.yml:6: keys[0].sha256: YAML read it as a number: put the hash in quotes" in (
        message
    )
    assert digits not in message
    path.write_text(path.read_text().replace(digits, f'"{digits}"'))
    assert load_config(path).keys[0].sha256 == digits
