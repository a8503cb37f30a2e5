"""The terminal report: table rows, colours, hints for problems and the summary line."""

from __future__ import annotations

import io
import re
import unicodedata

import pytest

from ollama_fleet.checks.model import (
    CheckResult,
    CheckRun,
    FailureClass,
    Status,
    fail,
    ok,
    warn,
)
from ollama_fleet.checks.reports import use_color
from ollama_fleet.checks.reports.text import TOTAL_WIDTH, render_text

SGR = re.compile(r"\x1b\[[0-9;]*m")


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _table_lines(out: str) -> list[str]:
    return out.split("\n\n", 1)[0].splitlines()


def _run_of(statuses: dict[str, Status]) -> CheckRun:
    findings = {
        Status.OK: ok("fine"),
        Status.WARN: warn(FailureClass.SLOW, "slow"),
        Status.FAIL: fail(FailureClass.REFUSED, "refused"),
    }
    results = tuple(
        CheckResult(
            target=name,
            url=f"https://{name}",
            check=check,
            # the host's status on its second check, so run order within a host shows
            findings=(findings[status] if check == "tls" else ok("fine"),),
            elapsed_ms=1.0,
        )
        for name, status in statuses.items()
        for check in ("connectivity", "tls")
    )
    return CheckRun(
        results=results, started_at="2025-06-01T10:00:00Z", duration_ms=1.0, targets=tuple(statuses)
    )


def test_one_row_per_result_with_status_and_class(run: CheckRun) -> None:
    lines = _table_lines(render_text(run))
    assert lines[0].split() == ["TARGET", "CHECK", "STATUS", "CLASS", "SUMMARY"]
    rows = lines[1:]
    assert len(rows) == len(run.results) == 18
    # the failing host first, then the warning one, then the ok one; checks in run order
    hosts = ["gpu-us-2", "gpu-eu-1", "edge-lab"]
    expected = [r for host in hosts for r in run.results if r.target == host]
    for row, result in zip(rows, expected, strict=True):
        target, check, status, klass = row.split()[:4]
        assert (target, check, status) == (result.target, result.check, result.status.upper())
        expected = result.failure_class.value if result.failure_class else "-"
        assert klass == expected


def test_columns_are_aligned_and_fit_the_width(run: CheckRun) -> None:
    lines = _table_lines(render_text(run))
    header = lines[0]
    starts = [header.index(h) for h in ("CHECK", "STATUS", "CLASS", "SUMMARY")]
    for row in lines[1:]:
        for start in starts:
            assert row[start - 2 : start] == "  " and row[start] != " "
        assert _columns(row) <= TOTAL_WIDTH


def test_long_summary_is_truncated_with_an_ellipsis() -> None:
    long = "model list is " + "very " * 60 + "long"
    result = CheckResult(
        target="t",
        url="https://t",
        check="models",
        findings=(fail(FailureClass.MODEL_MISSING, long),),
        elapsed_ms=5.0,
    )
    run = CheckRun(
        results=(result,), started_at="2025-06-01T10:00:00Z", duration_ms=5.0, targets=("t",)
    )
    out = render_text(run)
    row = _table_lines(out)[1]
    assert row.endswith("…") and _columns(row) <= TOTAL_WIDTH
    # The problem list below the table keeps the whole message.
    assert f"t/models: {long}" in out


def test_no_escape_sequences_without_color(run: CheckRun) -> None:
    out = render_text(run)
    assert "\x1b" not in out
    # The server's own escape sequence is shown, not sent to the terminal.
    assert "\\x1b[2J" in out
    assert "<script>alert(1)</script> & “bröken” 模型" in out


def test_color_paints_statuses_and_changes_nothing_else(run: CheckRun) -> None:
    colored = render_text(run, color=True)
    assert "\x1b[32mOK" in colored
    assert "\x1b[33mWARN" in colored
    assert "\x1b[31mFAIL" in colored
    assert SGR.sub("", colored) == render_text(run)


def test_hints_for_every_problem_and_none_for_ok(run: CheckRun) -> None:
    out = render_text(run)
    lines = out.splitlines()
    for result in run.results:
        head = f"{result.target}/{result.check}: "
        matching = [i for i, line in enumerate(lines) if head in line]
        if result.status is Status.OK:
            assert matching == []
            continue
        assert len(matching) == 1
        i = matching[0]
        assert lines[i].startswith(result.status.upper())
        following = lines[i + 1 : i + 4]
        assert f"    hint: {result.hint}" in following


def test_other_problem_findings_are_listed_too(run: CheckRun) -> None:
    out = render_text(run)
    assert "    also warn [model_missing]: llama3.2:3b-instruct-ü digest 1234abcd" in out


def test_summary_line(run: CheckRun, all_ok_run: CheckRun, empty_run: CheckRun) -> None:
    assert render_text(run).splitlines()[-1] == (
        "3 targets, 18 checks: 13 ok, 2 warn, 3 fail in 2.84 s"
    )
    assert render_text(all_ok_run).splitlines()[-1] == (
        "1 target, 6 checks: 6 ok, 0 warn, 0 fail in 0.84 s"
    )
    assert render_text(empty_run).splitlines() == [
        "no checks were run",
        "",
        "0 targets, 0 checks: 0 ok, 0 warn, 0 fail in 0.00 s",
    ]


def test_all_ok_run_has_no_problem_section(all_ok_run: CheckRun) -> None:
    out = render_text(all_ok_run)
    assert "hint:" not in out
    assert out.count("\n\n") == 1


def test_wide_target_names_keep_alignment() -> None:
    results = tuple(
        CheckResult(
            target=name, url="https://x", check="chat", findings=(ok("fine"),), elapsed_ms=1.0
        )
        for name in ("a", "a-much-longer-target-name")
    )
    run = CheckRun(
        results=results,
        started_at="2025-06-01T10:00:00Z",
        duration_ms=2.0,
        targets=("a", "a-much-longer-target-name"),
    )
    lines = _table_lines(render_text(run))
    assert lines[1].index("chat") == lines[2].index("chat") == lines[0].index("CHECK")


def test_hosts_by_severity_then_by_name_in_natural_order() -> None:
    run = _run_of(
        {
            "gpu-10": Status.OK,
            "gpu-2": Status.OK,
            "beta": Status.WARN,
            "Alpha": Status.WARN,
            "zulu": Status.FAIL,
            "edge": Status.OK,
        }
    )
    rows = _table_lines(render_text(run))[1:]
    hosts = list(dict.fromkeys(row.split()[0] for row in rows))
    assert hosts == ["zulu", "Alpha", "beta", "edge", "gpu-2", "gpu-10"]
    # within a host the checks keep the run's order, not their status
    assert [row.split()[1] for row in rows[:2]] == ["connectivity", "tls"]
    problems = [line.split()[1] for line in render_text(run).splitlines() if "/tls:" in line]
    assert problems == ["zulu/tls:", "Alpha/tls:", "beta/tls:"]


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("environ", "tty", "expected"),
    [
        ({}, True, True),
        ({"TERM": "xterm-256color"}, True, True),
        ({}, False, False),  # a pipe or a file
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": "0"}, True, False),  # any non-empty value, per no-color.org
        ({"NO_COLOR": ""}, True, True),  # empty is unset
        ({"TERM": "dumb"}, True, False),
    ],
)
def test_use_color(environ: dict[str, str], tty: bool, expected: bool) -> None:
    assert use_color(Terminal(tty), environ=environ) is expected


def test_use_color_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Terminal(True)) is True
    monkeypatch.setenv("NO_COLOR", "yes")
    assert use_color(Terminal(True)) is False


def test_use_color_is_false_for_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()
    assert use_color(stream, environ={}) is False
