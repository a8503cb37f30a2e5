"""The terminal report: table rows, colours, hints for problems and the summary line."""

from __future__ import annotations

import re
import unicodedata

from ollama_fleet.checks.model import CheckResult, CheckRun, FailureClass, Status, fail, ok
from ollama_fleet.checks.reports.text import TOTAL_WIDTH, render_text

SGR = re.compile(r"\x1b\[[0-9;]*m")


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _table_lines(out: str) -> list[str]:
    return out.split("\n\n", 1)[0].splitlines()


def test_one_row_per_result_with_status_and_class(run: CheckRun) -> None:
    lines = _table_lines(render_text(run))
    assert lines[0].split() == ["TARGET", "CHECK", "STATUS", "CLASS", "SUMMARY"]
    rows = lines[1:]
    assert len(rows) == len(run.results) == 18
    for row, result in zip(rows, run.results, strict=True):
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
