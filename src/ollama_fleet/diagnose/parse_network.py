"""Listening sockets (`ss -Hltnp`) and what the nftables ruleset (`nft -j`) admits over TCP.

Pure and total: odd input gives None or fewer entries, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .facts import Firewall, Listener

OUR_TABLE = "inet ollama_fleet"
RANGE_EXPANDED_MAX = 1024  # a wider accepted range is reported as a gap, not listed
_ALL_TCP = frozenset(range(1, 65536))
_PROCESS = re.compile(r'users:\(\("(?P<name>[^"]*)"')
# matches that do not narrow who may connect (what a rule matches on besides the port)
_PROTOCOL_KEYS = ("l4proto", "nfproto", "protocol")
_NOT_TCP = ("udp", "icmp", "icmpv6", "ipv6-icmp", "sctp", "udplite", "esp", "ah", "gre")
_STATEMENTS = ("counter", "limit", "log", "comment", "meta_set", "ct_set", "mangle", "set")


def listeners(text: str) -> tuple[Listener, ...]:
    """The listening sockets, in ss's order, without repeats (SO_REUSEPORT workers)."""
    found: dict[tuple[str, int, str], Listener] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or words[0] != "LISTEN":
            continue
        local = words[3]
        host, sep, port_text = local.rpartition(":")
        if not sep or not port_text.isdigit():
            continue
        host = host.split("%", 1)[0].strip("[]")  # "127.0.0.53%lo", "[fe80::1]%eth0"
        match = _PROCESS.search(line)
        listener = Listener(
            address=host, port=int(port_text), process=match.group("name") if match else ""
        )
        found.setdefault((listener.address, listener.port, listener.process), listener)
    return tuple(found.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chain:
    hook: str
    policy: str
    rules: tuple[tuple[Mapping[str, Any], ...], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FirewallReading:
    """The firewall, and what could not be told about it (too wide ranges, unknown sets)."""

    firewall: Firewall | None
    notes: tuple[str, ...] = ()


def firewall(text: str) -> FirewallReading:
    """What `nft -j list ruleset` admits; firewall None when the text is not nft's JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return FirewallReading(firewall=None, notes=("not nft's JSON output",))
    items = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return FirewallReading(firewall=None, notes=("no nftables list in nft's output",))
    reader = _Reader(items)
    return reader.read()


class _Reader:
    def __init__(self, items: list[Any]) -> None:
        self.tables: list[str] = []
        self.chains: dict[tuple[str, str, str], _Chain] = {}
        self.sets: dict[tuple[str, str, str], list[Any]] = {}
        self.notes: list[str] = []
        rules: dict[tuple[str, str, str], list[tuple[Mapping[str, Any], ...]]] = {}
        heads: dict[tuple[str, str, str], tuple[str, str]] = {}
        for item in items:
            if not isinstance(item, dict):
                continue
            for kind, body in item.items():
                if not isinstance(body, dict):
                    continue
                family, table = str(body.get("family", "")), str(body.get("table", ""))
                if kind == "table":
                    self.tables.append(f"{family} {body.get('name', '')}")
                elif kind == "chain":
                    key = (family, table, str(body.get("name", "")))
                    heads[key] = (str(body.get("hook", "")), str(body.get("policy", "")))
                elif kind == "set":
                    elements = body.get("elem", [])
                    key = (family, table, str(body.get("name", "")))
                    self.sets[key] = elements if isinstance(elements, list) else []
                elif kind == "rule":
                    key = (family, table, str(body.get("chain", "")))
                    expr = body.get("expr", [])
                    statements = tuple(e for e in expr if isinstance(e, dict))
                    rules.setdefault(key, []).append(statements)
        for key, (hook, policy) in heads.items():
            self.chains[key] = _Chain(hook=hook, policy=policy, rules=tuple(rules.get(key, [])))

    def read(self) -> FirewallReading:
        dropping = [
            (key, chain)
            for key, chain in self.chains.items()
            if chain.hook == "input" and _drops(chain)
        ]
        accepted: frozenset[int] | None = None
        for key, chain in dropping:
            ports = self._accepted(key, chain, seen=frozenset())
            accepted = ports if accepted is None else accepted & ports
        return FirewallReading(
            firewall=Firewall(
                tables=tuple(self.tables),
                ours=OUR_TABLE in self.tables,
                input_drops=bool(dropping),
                accepted_tcp=accepted,
            ),
            notes=tuple(dict.fromkeys(self.notes)),
        )

    def _accepted(
        self, key: tuple[str, str, str], chain: _Chain, *, seen: frozenset[tuple[str, str, str]]
    ) -> frozenset[int]:
        ports: set[int] = set()
        for statements in chain.rules:
            opened = self._rule_ports(key, statements)
            if opened is None:
                continue
            verdict, rule_ports = opened
            if verdict == "accept":
                ports |= rule_ports
            elif verdict.startswith("chain:"):
                target = (key[0], key[1], verdict.removeprefix("chain:"))
                sub = self.chains.get(target)
                if sub is None or target in seen:
                    continue
                reached = self._accepted(target, sub, seen=seen | {key})
                ports |= reached & rule_ports
        return frozenset(ports)

    def _rule_ports(
        self, key: tuple[str, str, str], statements: tuple[Mapping[str, Any], ...]
    ) -> tuple[str, frozenset[int]] | None:
        """(verdict, the TCP ports it applies to from anywhere), None when it narrows."""
        ports = _ALL_TCP
        verdict = ""
        for statement in statements:
            if "match" in statement:
                narrowed = self._match_ports(key, statement["match"])
                if narrowed is None:
                    return None
                ports = ports & narrowed
            elif "accept" in statement:
                verdict = "accept"
            elif "jump" in statement or "goto" in statement:
                target = statement.get("jump") or statement.get("goto")
                if isinstance(target, dict):
                    verdict = f"chain:{target.get('target', '')}"
            elif not any(name in statement for name in _STATEMENTS):
                return None  # drop, reject, return, nat, queue...: opens nothing
        return (verdict, ports) if verdict else None

    def _match_ports(self, key: tuple[str, str, str], match: Any) -> frozenset[int] | None:
        """The TCP ports a match lets through from anywhere; None when it narrows the source."""
        if not isinstance(match, dict):
            return None
        left, right, op = match.get("left"), match.get("right"), match.get("op", "==")
        if not isinstance(left, dict):
            return None
        payload, meta, ct = left.get("payload"), left.get("meta"), left.get("ct")
        if isinstance(payload, dict):
            field, protocol = payload.get("field"), payload.get("protocol")
            if field == "dport" and protocol in ("tcp", "th") and op in ("==", "in"):
                return self._ports(key, right)
            if field == "daddr":
                return _ALL_TCP
            if field in ("protocol", "nexthdr"):
                return _protocol_ports(right, op)
            return None
        if isinstance(meta, dict) and meta.get("key") in _PROTOCOL_KEYS:
            return _protocol_ports(right, op)
        if isinstance(ct, dict) and ct.get("key") == "state" and op in ("==", "in"):
            states = right if isinstance(right, list) else [right]
            return _ALL_TCP if "new" in states else None
        return None

    def _ports(self, key: tuple[str, str, str], right: Any) -> frozenset[int]:
        if isinstance(right, str) and right.startswith("@"):
            elements = self.sets.get((key[0], key[1], right[1:]))
            if elements is None:
                self.notes.append(f"set {right} not in the ruleset")
                return frozenset()
            return self._ports(key, {"set": elements})
        if isinstance(right, dict) and "set" in right:
            elements = right["set"]
            items: Iterable[Any] = elements if isinstance(elements, list) else [elements]
            ports: set[int] = set()
            for element in items:
                ports |= self._ports(key, element)
            return frozenset(ports)
        if isinstance(right, dict) and "range" in right:
            bounds = right["range"]
            if isinstance(bounds, list) and len(bounds) == 2:
                low, high = _port(bounds[0]), _port(bounds[1])
                if low is not None and high is not None and low <= high:
                    if high - low + 1 > RANGE_EXPANDED_MAX:
                        self.notes.append(f"accepts tcp ports {low}-{high}: too wide to list")
                        return frozenset()
                    return frozenset(range(low, high + 1))
            return frozenset()
        if isinstance(right, dict) and isinstance(right.get("elem"), dict):
            return self._ports(key, right["elem"].get("val"))  # an element with a timeout
        port = _port(right)
        return frozenset() if port is None else frozenset({port})


def _drops(chain: _Chain) -> bool:
    if chain.policy == "drop":
        return True
    if not chain.rules:
        return False
    last = [s for s in chain.rules[-1] if not any(name in s for name in _STATEMENTS)]
    return len(last) == 1 and ("drop" in last[0] or "reject" in last[0])


def _protocol_ports(right: Any, op: Any) -> frozenset[int] | None:
    if isinstance(right, dict):
        right = right.get("set")
    names = right if isinstance(right, list) else [right]
    tcp = "tcp" in names or 6 in names
    if op == "!=":
        return None if tcp else _ALL_TCP
    if tcp:
        return _ALL_TCP
    if all(isinstance(name, str) and name in _NOT_TCP for name in names):
        return frozenset()
    return _ALL_TCP if any(name in ("ipv4", "ipv6") for name in names) else None


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 65536 else None
    if isinstance(value, str) and value.isdigit():
        return _port(int(value))
    return None
