"""The load test's reports from a hand-made run: text, the JSON document's fields, HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from ollama_fleet.checks.model import FailureClass, fail
from ollama_fleet.errors import ConfigError
from ollama_fleet.loadtest.model import Api, LoadRun, LoadSettings, RequestOutcome, TokenSource
from ollama_fleet.loadtest.reports import (
    FORMATS,
    SIMULATOR_LABEL,
    render,
    render_html,
    render_json,
    render_text,
)

HOSTILE = "HTTP 500 (<script>alert(1)</script> \x1b[2J & more)"


def _ok(index: int, latency: float, ttft: float, tokens: int) -> RequestOutcome:
    return RequestOutcome(
        index=index,
        latency_ms=latency,
        first_token_ms=ttft,
        tokens=tokens,
        tokens_source=TokenSource.EVAL_COUNT,
        status_code=200,
    )


def make_run(*, simulator: bool = False, failures: bool = True) -> LoadRun:
    settings = LoadSettings(
        url="https://gpu-1.example.net",
        model="llama3.2:1b",
        requests=5,
        concurrency=2,
        api=Api.OPENAI,
        api_key="sk-never-in-a-report-42",
    )
    outcomes = [_ok(0, 100.0, 10.0, 20), _ok(1, 200.0, 30.0, 20), _ok(2, 400.0, 50.0, 40)]
    if failures:
        outcomes += [
            RequestOutcome(
                index=3,
                latency_ms=5.0,
                status_code=503,
                failure=fail(FailureClass.OVERLOAD, "POST /v1/chat/completions: HTTP 503"),
            ),
            RequestOutcome(
                index=4, latency_ms=5.0, failure=fail(FailureClass.SERVER_ERROR, HOSTILE)
            ),
        ]
    return LoadRun(
        settings=settings,
        started_at="2025-06-01T09:30:00Z",
        wall_ms=2000.0,
        outcomes=tuple(outcomes),
        simulator=simulator,
        server_version="0.12.0-simulator" if simulator else None,
    )


def test_text_gives_the_numbers() -> None:
    text = render_text(make_run())

    assert "5 sent: 3 ok, 2 failed" in text
    assert "latency      p50 200.0 ms  p95 400.0 ms  p99 400.0 ms  max 400.0 ms" in text
    assert "first token  p50 30.0 ms  p95 50.0 ms  p99 50.0 ms" in text
    assert "throughput   1.50 req/s" in text
    # 20/0.1 s, 20/0.2 s, 40/0.4 s per request; 80 tokens over 2 s in total
    assert "per request p50 100.0, mean 133.3; total 40.0 (80 tokens)" in text
    assert "overload x1: POST /v1/chat/completions: HTTP 503" in text
    assert "sheds load" in text  # the class's hint
    assert SIMULATOR_LABEL not in text


def test_text_labels_the_simulator() -> None:
    text = render_text(make_run(simulator=True))
    assert SIMULATOR_LABEL in text
    assert "version 0.12.0-simulator" in text


def test_text_shows_a_servers_escape_sequences_instead_of_running_them() -> None:
    text = render_text(make_run())
    assert "\x1b" not in text
    assert "\\x1b[2J" in text


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in render_text(make_run())
    assert "\x1b[31m" in render_text(make_run(), color=True)


def test_a_run_without_a_stream_says_why_it_has_no_first_token() -> None:
    run = make_run(failures=False)
    unstreamed = LoadRun(
        settings=LoadSettings(url="http://x", model="m", stream=False),
        started_at=run.started_at,
        wall_ms=run.wall_ms,
        outcomes=tuple(
            RequestOutcome(index=o.index, latency_ms=o.latency_ms, tokens=o.tokens)
            for o in run.outcomes
        ),
    )
    assert "first token  - (only streamed requests have one; --stream)" in render_text(unstreamed)


DOCUMENT_KEYS = {
    "schema",
    "schema_version",
    "tool_version",
    "started_at",
    "wall_ms",
    "status",
    "target",
    "settings",
    "requests",
    "latency_ms",
    "first_token_ms",
    "tokens_per_s",
    "tokens",
    "throughput_rps",
    "errors",
}


def test_the_json_document() -> None:
    doc = json.loads(render_json(make_run(simulator=True)))

    assert set(doc) == DOCUMENT_KEYS
    assert (doc["schema"], doc["schema_version"], doc["status"]) == (
        "ollama-fleet-loadtest",
        1,
        "fail",
    )
    assert doc["target"] == {
        "url": "https://gpu-1.example.net",
        "model": "llama3.2:1b",
        "api": "openai",
        "stream": True,
        "simulator": True,
        "server_version": "0.12.0-simulator",
    }
    assert doc["settings"]["concurrency"] == 2 and doc["settings"]["requests"] == 5
    assert doc["requests"] == {"total": 5, "ok": 3, "failed": 2}
    assert doc["latency_ms"] == {
        "count": 3,
        "mean": 233.333,
        "p50": 200.0,
        "p95": 400.0,
        "p99": 400.0,
        "max": 400.0,
    }
    assert doc["first_token_ms"]["p50"] == 30.0
    assert doc["tokens_per_s"] == {
        "per_request_p50": 100.0,
        "per_request_mean": 133.333,
        "total": 40.0,
    }
    assert doc["tokens"] == {"total": 80}
    assert doc["throughput_rps"] == 1.5
    assert [(e["class"], e["count"]) for e in doc["errors"]] == [
        ("overload", 1),
        ("server_error", 1),
    ]
    assert set(doc["errors"][0]) == {"class", "count", "example", "hint"}


def test_json_status_ok_and_unreachable() -> None:
    assert json.loads(render_json(make_run(failures=False)))["status"] == "ok"
    refused = LoadRun(
        settings=LoadSettings(url="http://x", model="m", requests=2),
        started_at="t",
        wall_ms=1.0,
        outcomes=tuple(
            RequestOutcome(index=i, latency_ms=1, failure=fail(FailureClass.REFUSED, "refused"))
            for i in range(2)
        ),
    )
    doc = json.loads(render_json(refused))
    assert doc["status"] == "unreachable"
    assert doc["latency_ms"]["p50"] is None and doc["throughput_rps"] is None


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [v or "" for k, v in attrs if k in ("src", "href")]


def test_html_is_self_contained_and_escapes_what_servers_said() -> None:
    page = render_html(make_run(simulator=True))
    parser = _Tags()
    parser.feed(page)

    assert "script" not in parser.tags and not parser.sources  # nothing runs, nothing loads
    assert "default-src 'none'" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x1b" not in page
    assert SIMULATOR_LABEL in page
    assert "server_error" in page and "overload" in page


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_report_carries_the_api_key(fmt: str) -> None:
    assert "sk-never-in-a-report-42" not in render(make_run(), fmt)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown load test report format 'csv'"):
        render(make_run(), "csv")
