"""monitor.yml's values with their lines: the reader that reports problems, and the converters.

A converter takes a value (and how a message may show it: a secret is never quoted) and
returns it typed, or raises Invalid; the Reader adds that as `FILE:LINE: KEY: problem`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet.inventory_errors import Origin, Problems
from ollama_fleet.inventory_yaml import Entry, VaultKeys, YamlFile, strings
from ollama_fleet.monitor.durations import EXAMPLES, format_duration, parse_duration
from ollama_fleet.values import port_problem
from ollama_fleet.varchecks import CONTROL, http_url

SECRET_TEXT = "the value is not shown: it is a secret"
HIDDEN = "a secret value (not shown)"  # a secret in place of its repr
_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]+)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Invalid(Exception):
    """What is wrong with one value, raised by a converter and reported by the reader."""


Convert = Callable[[Any, str], Any]  # (value, how a message may show it) -> the typed value


def parse_listen(value: Any) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT" or of a bare port (then 127.0.0.1); None if it is neither.

    An IPv6 host is written in brackets and comes back without them; port 0 picks a free one.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        host, port = "127.0.0.1", value
    else:
        match = isinstance(value, str) and _LISTEN.fullmatch(value.strip())
        if not match:
            return None
        host, port = match.group(1), int(match.group(2))
        if host.startswith("["):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                return None
    return None if port_problem(port, allow_zero=True) else (host, port)


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def unknown_key(key: str, allowed: Sequence[str], *, doc: str = "docs/monitor.md") -> str:
    near = get_close_matches(key, allowed, n=1)
    if near:
        return f"unknown key; did you mean {near[0]}?"
    if len(allowed) <= 8:
        return f"unknown key (one of {', '.join(allowed)})"
    return f"unknown key (see {doc})"


class Reader:
    """One config file being read: its entries with their lines, and the problems found.

    `doc` is the guide an unknown key's hint points at when no key is close to it.
    """

    def __init__(
        self,
        document: YamlFile,
        keys: VaultKeys,
        problems: Problems,
        *,
        doc: str = "docs/monitor.md",
    ) -> None:
        self.document, self.keys, self.problems = document, keys, problems
        self.doc = doc

    def add(self, line: int | None, key: str | None, text: str) -> None:
        self.problems.add(Origin(str(self.document.path), line), key or None, text)

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1

    def is_null(self, entry: Entry | None) -> bool:
        return entry is None or self.document.is_null(entry.node)

    def fields(self, node: yaml.Node, where: str, allowed: Sequence[str]) -> dict[str, Entry]:
        """The entries of a mapping by key; unknown keys, or no mapping at all, reported."""
        if self.document.is_null(node):
            return {}
        entries = self.document.entries(node, self.problems)
        if entries is None:
            self.add(self.line(node), where, f"expected a mapping of {', '.join(allowed[:3])}...")
            return {}
        found: dict[str, Entry] = {}
        for entry in entries:
            if entry.key in allowed:
                found.setdefault(entry.key, entry)  # a second one is a duplicate key, reported
            else:
                text = unknown_key(entry.key, allowed, doc=self.doc)
                self.add(entry.line, join_key(where, entry.key), text)
        return found

    def secret(self, value: Any) -> bool:
        return any(s in self.keys.decrypted for s in strings(value))

    def value(self, entry: Entry) -> tuple[bool, Any]:
        return self.document.value(entry.node, self.problems)

    def get(
        self,
        fields: Mapping[str, Entry],
        where: str,
        key: str,
        convert: Convert,
        *,
        secret: bool = False,
    ) -> Any:
        """The typed value of `key`; None when absent, null (the default) or wrong (reported)."""
        entry = fields.get(key)
        if entry is None:
            return None
        ok, value = self.value(entry)
        if not ok or value is None:
            return None
        shown = HIDDEN if secret or self.secret(value) else repr(value)
        try:
            return convert(value, shown)
        except Invalid as exc:
            self.add(entry.line, join_key(where, key), str(exc))
            return None

    def path(self, value: Any, shown: str) -> Path:
        """A path, relative to the file's folder (as relative as the file's own name)."""
        text = one_line(value, shown)
        return self.document.path.parent / Path(text).expanduser()


# -- converters: (value, shown) -> the typed value, or Invalid ----------------------------


def duration(*, minimum: float = 0.0, zero: bool = False) -> Convert:
    def convert(value: Any, shown: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise Invalid(f"{shown} is not a duration ({EXAMPLES})")
        if seconds == 0 and zero:
            return seconds
        if seconds <= 0 or seconds < minimum:
            least = f"at least {format_duration(minimum)}" if minimum else "above 0"
            raise Invalid(f"{shown} is too short; it must be {least}")
        return seconds

    return convert


def whole(low: int, high: int) -> Convert:
    def convert(value: Any, shown: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"expected a whole number from {low} to {high}, got {shown}")
        return value

    return convert


def number(low: float, high: float, *, above: bool = False) -> Convert:
    def convert(value: Any, shown: str) -> float:
        plain = isinstance(value, int | float) and not isinstance(value, bool)
        if not plain or not (low < value if above else low <= value) or value > high:
            word = "above" if above else "from"
            raise Invalid(f"expected a number {word} {low:g} to {high:g}, got {shown}")
        return float(value)

    return convert


def flag(value: Any, shown: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {shown}")
    return value


def choice(*choices: str) -> Convert:
    def convert(value: Any, shown: str) -> str:
        if value not in choices:
            raise Invalid(f"expected one of {', '.join(choices)}; got {shown}")
        return str(value)

    return convert


def one_line(value: Any, shown: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a non-empty string, got {shown}")
    if CONTROL.search(value):
        raise Invalid("holds a control character such as a newline")
    return value.strip()


def listen_address(value: Any, shown: str) -> tuple[str, int]:
    found = parse_listen(value)
    if found is None:
        raise Invalid(f"{shown} is not HOST:PORT ([IPv6]:PORT) or a port number")
    return found


def secret_url(value: Any, shown: str) -> str:
    if not isinstance(value, str) or not value or http_url(value):
        raise Invalid(f"expected an http(s) URL ({SECRET_TEXT})")
    return value


def env_name(value: Any, shown: str) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise Invalid(f"expected an environment variable name, got {shown}")
    return value


def sequence(reader: Reader, entry: Entry | None, what: str) -> list[yaml.Node]:
    """The items of a list-valued key (none for null); anything else is reported."""
    if entry is None or reader.is_null(entry):
        return []
    if not isinstance(entry.node, yaml.SequenceNode):
        reader.add(entry.line, entry.key, f"expected a list of {what}")
        return []
    return list(entry.node.value)
