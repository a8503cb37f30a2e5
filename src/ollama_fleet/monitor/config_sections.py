"""monitor.yml besides its targets: listen, storage, checks, timeouts, alerts and receivers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from ollama_fleet.checks.model import CHECK_NAMES
from ollama_fleet.checks.settings import DEFAULT_DEADLINE_S, ProbeSettings
from ollama_fleet.inventory_yaml import Entry
from ollama_fleet.monitor.config_reader import (
    SECRET_TEXT,
    Convert,
    Reader,
    choice,
    duration,
    flag,
    listen_address,
    number,
    one_line,
    secret_url,
    sequence,
    whole,
)
from ollama_fleet.monitor.durations import format_duration
from ollama_fleet.monitor.settings import (
    RECEIVER_KINDS,
    AlertPolicy,
    MonitorConfig,
    Receiver,
)
from ollama_fleet.varchecks import CONTROL

ALERT_KEYS = (
    *("failure_threshold", "success_threshold", "window", "min_success_rate", "warn"),
    *("send_on_resolved", "reminder", "retry"),
)
RECEIVER_KEYS = ("name", "type", "url", "headers", "timeout")
TIMEOUT_KEYS = ("connect", "read", "check")
MAX_CONCURRENCY = 1024
MAX_JITTER = 0.5
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# what httpx can send as a header value: printable ASCII (and tabs); a smart quote pasted
# with a token would pass a looser check and fail at every send instead
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def settings(reader: Reader, top: Mapping[str, Entry]) -> dict[str, Any]:
    """MonitorConfig's fields but its source, targets and state_dir, as keyword arguments."""
    found: dict[str, Any] = {}

    def put(attribute: str, key: str, convert: Convert) -> Any:
        value = reader.get(top, "", key, convert)
        if value is not None:
            found[attribute] = value
        return value

    listen = reader.get(top, "", "listen", listen_address)
    if listen is not None:
        found["listen_host"], found["listen_port"] = listen
    put("title", "title", one_line)
    refresh = reader.get(top, "", "refresh", duration(minimum=1))
    if refresh is not None:
        found["refresh_s"] = round(refresh)
    put("jitter", "jitter", number(0, MAX_JITTER))
    put("concurrency", "concurrency", whole(1, MAX_CONCURRENCY))
    put("shutdown_grace_s", "shutdown_grace", duration(zero=True))
    retention = put("retention_s", "retention", duration())
    rollups = put("rollup_retention_s", "rollup_retention", duration())
    if retention is not None or rollups is not None:
        defaults = MonitorConfig(source=reader.document.path, targets=())
        raw = retention or defaults.retention_s
        if (rollups or defaults.rollup_retention_s) < raw:
            entry = top["rollup_retention" if rollups is not None else "retention"]
            text = (
                "the hourly roll-ups must be kept at least as long as the raw samples "
                f"({format_duration(raw)})"
            )
            reader.add(entry.line, entry.key, text)
    put("gpu", "gpu", choice("auto", "off"))
    checks = _checks(reader, top.get("checks"))
    if checks:
        found["checks"] = checks
    found["intervals"] = _intervals(reader, top.get("intervals"))
    found["probe"] = _probe(reader, top.get("timeouts"))
    found["alerts"] = _alerts(reader, top.get("alerts"))
    found["receivers"] = _receivers(reader, top.get("receivers"))
    return found


def _checks(reader: Reader, entry: Entry | None) -> tuple[str, ...]:
    """The checks that run, in the checks' own order; () when not given (then all)."""
    if entry is None or reader.is_null(entry):
        return ()
    ok, value = reader.value(entry)
    names = value if ok and isinstance(value, list) else None
    if names is None or not names or not all(isinstance(n, str) for n in names):
        if ok:
            reader.add(entry.line, "checks", f"expected a list of {', '.join(CHECK_NAMES)}")
        return ()
    bad = False
    for index, name in enumerate(names):
        if name not in CHECK_NAMES:
            near = get_close_matches(name, CHECK_NAMES, n=1)
            hint = f"did you mean {near[0]}?" if near else f"one of {', '.join(CHECK_NAMES)}"
            reader.add(entry.line, "checks", f"unknown check {name!r}; {hint}")
            bad = True
        elif name in names[:index]:
            reader.add(entry.line, "checks", f"{name!r} is listed twice")
            bad = True
    return () if bad else tuple(n for n in CHECK_NAMES if n in names)


def _intervals(reader: Reader, entry: Entry | None) -> dict[str, float]:
    intervals = dict(MonitorConfig(source=reader.document.path, targets=()).intervals)
    fields = {} if entry is None else reader.fields(entry.node, "intervals", CHECK_NAMES)
    for name in fields:
        seconds = reader.get(fields, "intervals", name, duration())
        if seconds is not None:
            intervals[name] = seconds
    return intervals


def _probe(reader: Reader, entry: Entry | None) -> ProbeSettings:
    """The time bounds of one check (`timeouts`); a check may last its connect and read."""
    fields = {} if entry is None else reader.fields(entry.node, "timeouts", TIMEOUT_KEYS)
    given = {key: reader.get(fields, "timeouts", key, duration()) for key in TIMEOUT_KEYS}
    base = ProbeSettings()
    connect = given["connect"] or base.connect_timeout_s
    read = given["read"] or base.read_timeout_s
    check = given["check"] or base.check_timeout_s
    if check < max(connect, read):
        longest = "read" if read >= connect else "connect"
        where = fields["check" if given["check"] else longest]
        most, bound = format_duration(max(connect, read)), format_duration(check)
        text = (
            f"{bound} is shorter than timeouts.{longest} ({most}): it could never wait that long"
            if where.key == "check"
            else f"{most} is longer than timeouts.check ({bound}), which bounds the whole check"
        )
        reader.add(where.line, f"timeouts.{where.key}", text)
        return base
    return ProbeSettings(
        connect_timeout_s=connect,
        read_timeout_s=read,
        check_timeout_s=check,
        deadline_s=max(DEFAULT_DEADLINE_S, check),
    )


def _alerts(reader: Reader, entry: Entry | None) -> AlertPolicy:
    fields = {} if entry is None else reader.fields(entry.node, "alerts", ALERT_KEYS)
    found: dict[str, Any] = {}
    converts: dict[str, tuple[str, Convert]] = {
        "failure_threshold": ("failure_threshold", whole(1, 1000)),
        "success_threshold": ("success_threshold", whole(1, 1000)),
        "window": ("window", whole(1, 10000)),
        "min_success_rate": ("min_success_rate", number(0, 1, above=True)),
        "warn": ("warn", flag),
        "send_on_resolved": ("send_on_resolved", flag),
        "reminder": ("reminder_s", duration()),
        "retry": ("retry_s", duration()),
    }
    for key in fields:
        attribute, convert = converts[key]
        value = reader.get(fields, "alerts", key, convert)
        if value is not None:
            found[attribute] = value
        elif key in ("min_success_rate", "reminder") and reader.is_null(fields[key]):
            found[attribute] = None  # written as null: off
    return AlertPolicy(**found)


def _receivers(reader: Reader, entry: Entry | None) -> tuple[Receiver, ...]:
    receivers: list[Receiver] = []
    first: dict[str, int] = {}
    for index, node in enumerate(sequence(reader, entry, "receivers (- name: ...)")):
        where = f"receivers[{index}]"
        fields = reader.fields(node, where, RECEIVER_KEYS)
        if not fields:
            if reader.document.is_null(node):
                reader.add(reader.line(node), where, "empty; a receiver has name, type and url")
            continue
        missing = [key for key in ("name", "type", "url") if key not in fields]
        if missing:
            text = f"no {' and no '.join(missing)}; a receiver has name, type and url"
            reader.add(reader.line(node), where, text)
        name = reader.get(fields, where, "name", one_line)
        kind = reader.get(fields, where, "type", choice(*RECEIVER_KINDS))
        url = reader.get(fields, where, "url", secret_url, secret=True)
        timeout = reader.get(fields, where, "timeout", duration())
        headers = _headers(reader, fields.get("headers"), f"{where}.headers")
        if name is not None and name in first:
            text = f"{name!r} is the name of another receiver too (line {first[name]})"
            reader.add(fields["name"].line, f"{where}.name", text)
        elif name is not None:
            first[name] = fields["name"].line
        if name is None or kind is None or url is None or headers is None:
            continue
        extra = {} if timeout is None else {"timeout_s": timeout}
        receivers.append(Receiver(name=name, kind=kind, url=url, headers=headers, **extra))
    return tuple(receivers)


def _headers(reader: Reader, entry: Entry | None, where: str) -> dict[str, str] | None:
    """HTTP headers to send; their values are secrets (a token), never shown."""
    if entry is None or reader.is_null(entry):
        return {}
    entries = reader.document.entries(entry.node, reader.problems)
    if entries is None:
        reader.add(entry.line, where, "expected a mapping of Header-Name: value")
        return None
    headers: dict[str, str] = {}
    for item in entries:
        ok, value = reader.value(item)
        if not _HEADER.fullmatch(item.key):
            reader.add(item.line, where, f"{item.key!r} is not an HTTP header name")
        elif not ok:
            continue
        elif not isinstance(value, str) or CONTROL.search(value):
            reader.add(
                item.line, f"{where}.{item.key}", f"expected a one-line string ({SECRET_TEXT})"
            )
        elif not _HEADER_VALUE.fullmatch(value):
            text = f"only printable ASCII can be sent in a header, no curly quotes ({SECRET_TEXT})"
            reader.add(item.line, f"{where}.{item.key}", text)
        else:
            headers[item.key] = value
    return headers if len(headers) == len(entries) else None
