"""Listening sockets and what real nftables rulesets admit over TCP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose import parse_network
from ollama_fleet.diagnose.facts import Listener

DATA = Path(__file__).parent.parent / "data" / "diagnose"
LAB = json.loads((DATA / "lab-healthy.json").read_text())
NONROOT = json.loads((DATA / "lab-nonroot.json").read_text())


def ruleset(name: str) -> parse_network.FirewallReading:
    return parse_network.firewall((DATA / "nft" / f"{name}.json").read_text())


def test_the_labs_listeners() -> None:
    found = parse_network.listeners(LAB["sockets"]["stdout"])
    assert Listener(address="127.0.0.1", port=11434, process="python3") in found
    assert Listener(address="*", port=443, process="caddy") in found
    assert Listener(address="::", port=22, process="sshd") in found
    assert [listener.loopback for listener in found if listener.port == 11434] == [True]


def test_without_root_ss_names_no_process() -> None:
    found = parse_network.listeners(NONROOT["sockets"]["stdout"])
    assert len(found) == 7
    assert {listener.process for listener in found} == {""}


def test_ipv6_scopes_and_repeats() -> None:
    text = (
        'LISTEN 0 4096 [::1]:11434 [::]:* users:(("ollama",pid=9,fd=3))\n'
        'LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=5,fd=14))\n'
        "LISTEN 0 4096 [fe80::1]%eth0:546 [::]:*\n"
        'LISTEN 0 4096 0.0.0.0:8080 0.0.0.0:* users:(("w",pid=1,fd=3))\n'
        'LISTEN 0 4096 0.0.0.0:8080 0.0.0.0:* users:(("w",pid=1,fd=3))\n'
    )
    found = parse_network.listeners(text)
    assert [(x.address, x.port, x.process) for x in found] == [
        ("::1", 11434, "ollama"),
        ("127.0.0.53", 53, "systemd-resolve"),
        ("fe80::1", 546, ""),
        ("0.0.0.0", 8080, "w"),
    ]
    assert found[0].loopback and found[1].loopback


@pytest.mark.parametrize("text", ["", "garbage", "LISTEN 0 1 nowhere *:*", "LISTEN 0 1 a:b c"])
def test_garbage_sockets_give_no_listener(text: str) -> None:
    assert parse_network.listeners(text) == ()


def test_the_labs_firewall_drops_and_admits_only_ssh_and_web() -> None:
    reading = parse_network.firewall(LAB["ruleset"]["stdout"])
    firewall = reading.firewall
    assert firewall is not None
    assert firewall.ours and firewall.input_drops
    assert firewall.accepted_tcp == frozenset({22, 80, 443})
    assert not firewall.admits(11434)
    assert not firewall.admits(9464)  # only from the metrics host (ip saddr)
    assert firewall.admits(443)
    assert reading.notes == ()


def test_debians_default_ruleset_filters_nothing() -> None:
    firewall = ruleset("debian-default").firewall
    assert firewall is not None
    assert firewall.tables == ("inet filter",)
    assert not firewall.ours and not firewall.input_drops
    assert firewall.accepted_tcp is None
    assert firewall.admits(11434)


def test_sets_ranges_jumps_and_narrowed_accepts() -> None:
    reading = ruleset("rich-drop")
    firewall = reading.firewall
    assert firewall is not None
    assert firewall.tables == ("inet ollama_fleet", "ip nat", "ip filter")
    assert firewall.input_drops
    assert firewall.accepted_tcp == frozenset(
        {22, 80, 443, 2222, 3000, 3001, 3002, 5000, *range(8000, 8011)}
    )
    for narrowed in (11434, 9100, 9101, 9464, 53, 8081):
        assert not firewall.admits(narrowed)
    assert reading.notes == ("accepts tcp ports 20000-30000: too wide to list",)


def test_a_final_reject_rule_drops_like_a_policy() -> None:
    firewall = ruleset("final-reject").firewall
    assert firewall is not None
    assert firewall.input_drops and not firewall.ours
    assert firewall.accepted_tcp == frozenset({22, 443})


def test_accepting_all_tcp_admits_every_port() -> None:
    firewall = ruleset("open-all-tcp").firewall
    assert firewall is not None
    assert firewall.input_drops
    assert firewall.admits(11434) and firewall.admits(1) and firewall.admits(65535)


def test_a_port_must_pass_every_dropping_input_chain() -> None:
    firewall = ruleset("two-input-chains").firewall
    assert firewall is not None
    assert firewall.accepted_tcp == frozenset({22, 80, 443})


def test_a_named_set_not_in_the_output() -> None:
    text = json.dumps(
        {
            "nftables": [
                {
                    "chain": {
                        "family": "inet",
                        "table": "t",
                        "name": "in",
                        "hook": "input",
                        "policy": "drop",
                    }
                },
                {
                    "rule": {
                        "family": "inet",
                        "table": "t",
                        "chain": "in",
                        "expr": [
                            {
                                "match": {
                                    "op": "==",
                                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                    "right": "@gone",
                                }
                            },
                            {"accept": None},
                        ],
                    }
                },
                {
                    "rule": {
                        "family": "inet",
                        "table": "t",
                        "chain": "in",
                        "expr": [
                            {"jump": {"target": "in"}},
                        ],
                    }
                },
            ]
        }
    )
    reading = parse_network.firewall(text)
    assert reading.firewall is not None and reading.firewall.accepted_tcp == frozenset()
    assert reading.notes == ("set @gone not in the ruleset",)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"nftables": 3}',
        '{"nftables": [1, "x", {"rule": 5}, {"chain": {"hook": "input", "policy": "drop"}},'
        ' {"rule": {"chain": "", "expr": [{"match": 1}, {"match": {"left": 2}}, 7]}}]}',
        '{"nftables": [{"rule": {"expr": "x"}}, {"set": {"elem": 1}}]}',
    ],
)
def test_garbage_rulesets_never_raise(text: str) -> None:
    reading = parse_network.firewall(text)
    if reading.firewall is None:
        assert reading.notes
