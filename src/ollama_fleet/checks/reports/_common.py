"""Helpers shared by the reporters: counts, ordering, number formats and safe strings."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ollama_fleet.checks.model import CHECK_NAMES, CheckResult, CheckRun, Status, overall_status


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """How many targets and checks a run has, and how many checks ended in each status."""

    targets: int
    checks: int
    ok: int
    warn: int
    fail: int


def target_names(run: CheckRun) -> tuple[str, ...]:
    """The run's targets in their order, plus any target that only appears in the results."""
    names = list(dict.fromkeys(run.targets))
    seen = set(names)
    for result in run.results:
        if result.target not in seen:
            seen.add(result.target)
            names.append(result.target)
    return tuple(names)


def count(run: CheckRun) -> Counts:
    """Count targets, checks and statuses of a run."""
    return count_results(run.results, targets=len(target_names(run)))


def count_results(results: Sequence[CheckResult], *, targets: int) -> Counts:
    """Count the checks and statuses of `results`, which cover `targets` targets."""
    statuses = [r.status for r in results]
    return Counts(
        targets=targets,
        checks=len(statuses),
        ok=statuses.count(Status.OK),
        warn=statuses.count(Status.WARN),
        fail=statuses.count(Status.FAIL),
    )


def by_target(run: CheckRun) -> dict[str, list[CheckResult]]:
    """The results grouped by target, targets in run order, results in run order."""
    groups: dict[str, list[CheckResult]] = {name: [] for name in target_names(run)}
    for result in run.results:
        groups[result.target].append(result)
    return groups


def name_key(name: str) -> tuple[str | int, ...]:
    """Sort key for host names in natural order: gpu-2 before gpu-10, case ignored."""
    # re.split with a group alternates text and digits, so the tuples compare str with str
    # and int with int at every position.
    parts = re.split(r"(\d+)", name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def by_severity(run: CheckRun) -> list[tuple[str, list[CheckResult]]]:
    """The results grouped by target, hosts with a fail first, then warn, then ok.

    Within one status, hosts are in natural name order; each host's results stay in run order.
    """
    return sorted(
        by_target(run).items(),
        key=lambda item: (-overall_status(item[1]).rank, name_key(item[0]), item[0]),
    )


def check_rank(check: str) -> int:
    """Position of a check in the canonical order; unknown checks sort after the known ones."""
    try:
        return CHECK_NAMES.index(check)
    except ValueError:
        return len(CHECK_NAMES)


def plural(n: int, word: str) -> str:
    """`1 target`, `3 targets`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def seconds(ms: float) -> str:
    """Milliseconds as seconds with 3 decimals, as JUnit wants them."""
    if not math.isfinite(ms) or ms < 0:
        ms = 0.0
    return f"{ms / 1000:.3f}"


def to_jsonable(value: Any) -> Any:
    """A deep, JSON-ready copy: mappings become dicts with str keys, sequences lists.

    Non-finite floats become None (JSON has no NaN); anything unknown becomes its str().
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_jsonable(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
        return items
    return str(value)


# Characters that are not allowed in XML 1.0 documents at all.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 cannot carry (C0 controls, lone surrogates) with U+FFFD."""
    return _XML_INVALID.sub("\ufffd", text)


# C0/C1 controls except tab/newline/CR, which HTML treats as whitespace.
_HTML_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def html_safe(text: str) -> str:
    """Replace control characters (terminal escapes and the like) with U+FFFD for HTML."""
    return _HTML_CONTROL.sub("\ufffd", text)


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_safe(text: str) -> str:
    """One line of terminal-safe text: whitespace folded, escapes and controls made visible.

    A server can put anything into a message, including ANSI sequences that would
    repaint the terminal; those are shown as `\\x1b` instead of being interpreted.
    """
    out: list[str] = []
    for ch in text:
        if ch in "\t\n\r\x0b\x0c":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\x{ord(ch):02x}")
        elif ch in _BIDI:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def duration(ms: float) -> str:
    """ "850 ms", "2.31 s", or "—" for a time that is not one."""
    if not math.isfinite(ms) or ms < 0:
        return "—"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"
