"""The CSV report: parsed back with the csv module, formulas defused, and from the real CLI."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ollama_fleet.checks import reports
from ollama_fleet.checks.model import CheckResult, CheckRun, FailureClass, fail, ok
from ollama_fleet.checks.reports.csv import COLUMNS, defuse, render_csv
from ollama_fleet.cli import main
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

# the targets of the `run` fixture (conftest.py)
EU, US, LAB = "gpu-eu-1", "gpu-us-2", "edge-lab"

HEADER = [
    "target",
    "url",
    "check",
    "status",
    "failure_class",
    "summary",
    "hint",
    "elapsed_ms",
    "connect_ms",
    "tls_ms",
    "first_byte_ms",
    "first_token_ms",
    "total_ms",
    "started_at",
]


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_header_is_the_documented_one(run: CheckRun) -> None:
    first = next(csv.reader(io.StringIO(render_csv(run), newline="")))

    assert first == HEADER == list(COLUMNS)


def test_one_row_per_result_in_run_order(run: CheckRun) -> None:
    rows = parse(render_csv(run))

    assert [(r["target"], r["check"]) for r in rows] == [(r.target, r.check) for r in run.results]
    assert {r["started_at"] for r in rows} == {run.started_at}
    assert {r["url"] for r in rows if r["target"] == US} == {"https://gpu-us-2.example.net:8443"}


def test_statuses_classes_and_hints_as_the_results_say(run: CheckRun) -> None:
    rows = {(r["target"], r["check"]): r for r in parse(render_csv(run))}

    tls = rows[(EU, "tls")]
    assert (tls["status"], tls["failure_class"]) == ("warn", "tls_expired")
    assert tls["summary"] == "certificate expires in 12 days (2025-06-13)"
    assert "renew it" in tls["hint"]
    fine = rows[(EU, "connectivity")]
    assert (fine["status"], fine["failure_class"], fine["hint"]) == ("ok", "", "")
    assert rows[(US, "models")]["failure_class"] == "model_missing"


def test_timings_are_in_their_columns_and_empty_where_not_measured(run: CheckRun) -> None:
    rows = {(r["target"], r["check"]): r for r in parse(render_csv(run))}

    connectivity = rows[(EU, "connectivity")]
    assert [connectivity[c] for c in ("connect_ms", "tls_ms", "first_byte_ms", "total_ms")] == [
        "12.40",
        "30.10",
        "80.20",
        "95.40",
    ]
    assert connectivity["first_token_ms"] == ""
    assert connectivity["elapsed_ms"] == "95.40"
    # the chat probe's older shape: first_token_ms at the top level of its details
    assert rows[(LAB, "chat")]["first_token_ms"] == "420.00"
    assert rows[(EU, "tls")]["connect_ms"] == ""  # the tls check makes no HTTP request


def test_hostile_text_survives_quoting_whole(run: CheckRun) -> None:
    rows = {(r["target"], r["check"]): r for r in parse(render_csv(run))}
    hostile = next(r for r in run.results if (r.target, r.check) == (US, "chat")).summary

    assert "\x1b" in hostile and "<script>" in hostile and "模型" in hostile
    assert rows[(US, "chat")]["summary"] == hostile


def _run_with_summary(summary: str) -> CheckRun:
    result = CheckResult(
        target="a", url="http://a", check="chat", findings=(ok(summary),), elapsed_ms=1.0
    )
    return CheckRun(results=(result,), started_at="2025-01-01T00:00:00Z", duration_ms=1, targets=())


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://evil","x")', "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_a_formula_is_defused(cell: str) -> None:
    rows = parse(render_csv(_run_with_summary(cell)))

    assert rows[0]["summary"] == "'" + cell


@pytest.mark.parametrize("cell", ["plain", "1 = 1", "a-b", "", "'quoted"])
def test_other_cells_are_left_alone(cell: str) -> None:
    assert defuse(cell) == cell


def test_quoting_follows_rfc_4180() -> None:
    result = CheckResult(
        target="a",
        url="http://a",
        check="chat",
        findings=(fail(FailureClass.SERVER_ERROR, 'said "no", then\nmore, text'),),
        elapsed_ms=2.5,
    )
    run = CheckRun(results=(result,), started_at="s", duration_ms=1, targets=("a",))
    text = render_csv(run)

    assert '"said ""no"", then\nmore, text"' in text
    assert text.endswith("\r\n")
    assert parse(text)[0]["summary"] == 'said "no", then\nmore, text'


def test_the_dispatcher_knows_csv(run: CheckRun) -> None:
    assert "csv" in reports.FORMATS
    assert reports.render(run, "csv") == render_csv(run)


def test_an_empty_run_is_only_the_header(empty_run: CheckRun) -> None:
    assert render_csv(empty_run) == ",".join(HEADER) + "\r\n"


# --- the CLI, end to end against a real simulator ------------------------------------------

MODEL = "llama3.2:1b"
SECRET = "sk-csv-test-0123456789abcdef"


@pytest.fixture(scope="module")
def ollama_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.integration
def test_check_writes_csv_chosen_by_the_suffix(
    ollama_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSV_TEST_KEY", SECRET)
    out = tmp_path / "x.csv"
    args = ["check", "--url", ollama_url, "--model", MODEL, "--api-key-env", "CSV_TEST_KEY"]
    result = CliRunner().invoke(main, [*args, "-o", str(out)], catch_exceptions=False)

    assert "csv report written to" in result.stdout, result.output
    text = out.read_text(encoding="utf-8")
    rows = parse(text)
    host = ollama_url.removeprefix("http://")
    assert {r["check"] for r in rows} == {"connectivity", "models", "chat", "auth"}
    assert {r["target"] for r in rows} == {host}
    chat = next(r for r in rows if r["check"] == "chat")
    assert chat["status"] == "ok"
    assert float(chat["first_token_ms"]) > 0
    # the simulator serves without a key: auth fails it as open access, and says so
    auth = next(r for r in rows if r["check"] == "auth")
    assert (auth["status"], auth["failure_class"]) == ("fail", "open_access")
    assert SECRET not in text and SECRET not in result.output


@pytest.mark.integration
def test_check_format_csv_on_stdout(ollama_url: str) -> None:
    result = CliRunner().invoke(
        main,
        ["check", "--url", ollama_url, "--only", "connectivity", "--format", "csv"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    rows = parse(result.stdout)
    assert [r["check"] for r in rows] == ["connectivity"]
    assert rows[0]["status"] == "ok"
