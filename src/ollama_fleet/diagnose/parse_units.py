"""systemd units from `systemctl show` blocks and their journals, and the lines that are errors.

Pure and total: odd input gives fewer units or fewer lines, never an exception.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shlex
from collections.abc import Mapping

from .facts import Unit

ERRORS_KEPT = 10
ERROR_CHARS = 300

_JOURNAL_NOISE = ("-- No entries --", "-- Journal begins", "-- Logs begin", "-- Boot ", "-- Reboot")
# "2026-12-01T17:27:40+0000 host process[pid]: message" (journalctl -o short-iso)
_JOURNAL_LINE = re.compile(r"^\S+ \S+ [^:\s]+(?:\[\d+\])?: (?P<message>.*)$")
_TEXT_ERRORS = (
    "level=ERROR",
    "level=error",
    "level=FATAL",
    "level=fatal",
    "level=PANIC",
    "level=panic",
    "Failed",
    "failed with result",
    "error:",
    "Error:",
    "Unknown key name",
    "Invalid environment assignment",
    "Traceback (most recent call last)",
)
_LOG_LEVEL_ERROR = re.compile(r"^(ERROR|CRITICAL|FATAL|PANIC)\b")
_EXIT = re.compile(r"Main process exited, code=(?P<code>\w+), status=(?P<status>\d+)")
_JSON_ERROR_LEVELS = ("error", "fatal", "panic", "dpanic")


def parse_show(text: str) -> dict[str, Unit]:
    """{name: Unit} from `systemctl show -p ... UNIT...` (blocks split by blank lines)."""
    units: dict[str, Unit] = {}
    for block in re.split(r"\n\s*\n", text):
        properties: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                properties[key.strip()] = value.strip()
        unit = _unit(properties)
        if unit is not None:
            units[unit.name] = unit
    return units


def _unit(properties: Mapping[str, str]) -> Unit | None:
    name = properties.get("Id", "")
    if not name:
        return None
    return Unit(
        name=name,
        load_state=properties.get("LoadState", ""),
        active_state=properties.get("ActiveState", ""),
        sub_state=properties.get("SubState", ""),
        result=properties.get("Result", ""),
        restarts=_int(properties.get("NRestarts")),
        since=parse_timestamp(properties.get("ActiveEnterTimestamp", "")),
        main_status=_int(properties.get("ExecMainStatus")),
        fragment=properties.get("FragmentPath", ""),
        drop_ins=tuple(properties.get("DropInPaths", "").split()),
        environment=parse_environment(properties.get("Environment", "")),
    )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_timestamp(text: str) -> dt.datetime | None:
    """A systemd timestamp in UTC: "Tue 2026-12-01 18:23:42 UTC", "@1796149422"; None: never.

    A local zone's abbreviation ("CET") cannot be resolved without the host's zone data, so
    such a timestamp reads as unknown (None) rather than as a wrong time.
    """
    text = text.strip()
    if not text or text == "n/a":
        return None
    if text.startswith("@"):
        try:
            return dt.datetime.fromtimestamp(float(text[1:]), tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            return None
    words = text.split()
    if len(words) == 4:  # the weekday first
        words = words[1:]
    if len(words) != 3:
        return None
    day, clock, zone = words
    try:
        naive = dt.datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if zone in ("UTC", "GMT", "Z"):
        return naive.replace(tzinfo=dt.UTC)
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", zone)
    if match is None:
        return None
    sign = 1 if match.group(1) == "+" else -1
    offset = dt.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return (naive - sign * offset).replace(tzinfo=dt.UTC)


def parse_environment(text: str) -> dict[str, str]:
    """Environment= as systemd shows it: KEY=VALUE words, "KEY=a b" quoted; the last one wins."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    environment: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key:
            environment[key] = value
    return environment


def journal_lines(text: str) -> tuple[str, ...]:
    """The journal's lines, oldest first, without journalctl's own notes."""
    return tuple(
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(_JOURNAL_NOISE)
    )


def error_lines(lines: tuple[str, ...]) -> tuple[str, ...]:
    """The last lines that read as errors, each cut to a readable length."""
    found = [line[:ERROR_CHARS] for line in lines if reads_as_error(line)]
    return tuple(found[-ERRORS_KEPT:])


def reads_as_error(line: str) -> bool:
    """Whether a journal line reports an error (JSON logs by their level, text by its words)."""
    match = _JOURNAL_LINE.match(line)
    message = match.group("message") if match else line
    if message.lstrip().startswith("{"):
        try:
            record = json.loads(message)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return str(record.get("level", "")).lower() in _JSON_ERROR_LEVELS
    exited = _EXIT.search(message)
    if exited is not None:
        return exited.group("code") != "exited" or exited.group("status") != "0"
    if _LOG_LEVEL_ERROR.match(message):
        return True
    return any(word in message for word in _TEXT_ERRORS)


def with_journal(unit: Unit, journal_text: str) -> Unit:
    """`unit` with its journal lines and the errors among them."""
    lines = journal_lines(journal_text)
    return dataclasses.replace(unit, journal=lines, errors=error_lines(lines))
