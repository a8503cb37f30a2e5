"""auth: open access judged by /api/tags without a key, and the harmless write-endpoint probes.

The pure judges first; then the probe against real servers on 127.0.0.1: the simulator with
nothing in front (every write endpoint answers: exposed, and nothing changes), and a small
proxy stand-in that refuses the write endpoints in the other ways a proxy can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from ollama_fleet.checks.classify import HOST_HEADER_HINT, WRITE_ENDPOINT_HINT
from ollama_fleet.checks.http import Answer
from ollama_fleet.checks.model import CheckResult, FailureClass, PublicAccess, Status, Target
from ollama_fleet.checks.probes.auth import WRITE_PROBES, judge_access, judge_write_answer
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

TAGS = json.dumps({"models": [{"name": "llama3.2:1b", "digest": "ab"}]}).encode()
PULL = WRITE_PROBES[0]


def answer(status: int, body: bytes = b"") -> Answer:
    return Answer(status, httpx.Headers(), body, "HTTP/1.1")


# --- judge_access (pure) ---------------------------------------------------------------------


def test_a_model_list_without_a_key_is_open_access() -> None:
    finding = judge_access(answer(200, TAGS), public_access=PublicAccess.CLOSED)
    assert (finding.status, finding.failure_class) == (Status.FAIL, FailureClass.OPEN_ACCESS)
    assert "public_access: open" in (finding.hint or "")


def test_declared_open_access_is_reported_as_ok() -> None:
    finding = judge_access(answer(200, TAGS), public_access=PublicAccess.OPEN)
    assert finding.status is Status.OK
    assert finding.failure_class is None
    assert finding.message.startswith("open access, as declared (public_access: open)")


@pytest.mark.parametrize("access", list(PublicAccess))
@pytest.mark.parametrize(
    ("status", "body"), [(401, b""), (401, b'{"error":"unauthorized"}'), (403, b"forbidden")]
)
def test_a_refusal_without_a_key_is_ok(access: PublicAccess, status: int, body: bytes) -> None:
    finding = judge_access(answer(status, body), public_access=access)
    assert finding.status is Status.OK
    assert finding.message.startswith(f"without a key: {status}")


def test_an_empty_403_is_ollamas_host_check_not_a_key_check() -> None:
    finding = judge_access(answer(403), public_access=PublicAccess.CLOSED)
    assert finding.failure_class is FailureClass.AUTH
    assert finding.hint == HOST_HEADER_HINT


@pytest.mark.parametrize("body", [b"<html>login</html>", b'{"models": "x"}', b"[]"])
def test_a_200_that_is_not_a_model_list_is_a_bad_response(body: bytes) -> None:
    finding = judge_access(answer(200, body), public_access=PublicAccess.CLOSED)
    assert finding.failure_class is FailureClass.BAD_RESPONSE


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [
        (503, FailureClass.OVERLOAD),
        (500, FailureClass.SERVER_ERROR),
        (302, FailureClass.BAD_RESPONSE),
    ],
)
def test_other_answers_are_classified_as_usual(status: int, failure_class: FailureClass) -> None:
    finding = judge_access(answer(status, b'{"error":"x"}'), public_access=PublicAccess.OPEN)
    assert finding.failure_class is failure_class


# --- judge_write_answer (pure) ---------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 405])
def test_refusals(status: int) -> None:
    finding = judge_write_answer(PULL, status, b'{"error":"forbidden"}')
    assert finding.status is Status.OK
    assert finding.message == f"POST /api/pull: refused ({status})"


@pytest.mark.parametrize("status", [200, 201, 400, 404, 429, 500, 502, 503])
def test_anything_else_is_exposed(status: int) -> None:
    finding = judge_write_answer(PULL, status, b'{"error":"invalid model name"}')
    assert (finding.status, finding.failure_class) == (Status.FAIL, FailureClass.EXPOSED)
    assert finding.message == (
        f"POST /api/pull is exposed: HTTP {status} (invalid model name), not a refusal"
    )
    assert finding.hint == WRITE_ENDPOINT_HINT


def test_the_probes_cover_every_write_endpoint_with_bodies_ollama_rejects() -> None:
    assert [p.endpoint for p in WRITE_PROBES] == [
        "pull", "push", "delete", "create", "copy", "blobs",
    ]  # fmt: skip
    for probe in WRITE_PROBES:
        if probe.body is None:
            assert probe.method == "HEAD"  # only stats a file: nothing to reject
            continue
        names = [v for k, v in probe.body.items() if k in ("model", "source", "destination")]
        assert names and all(name == "" for name in names), probe  # invalid to every Ollama


# --- the probe against real servers ---------------------------------------------------------


@pytest.fixture
def simulator_port() -> Iterator[int]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield port


def auth_result(target: Target) -> CheckResult:
    (result,) = asyncio.run(run_checks([target], only=["auth"])).results
    return result


@pytest.mark.integration
def test_ollama_reached_directly_exposes_every_write_endpoint_and_is_not_changed(
    simulator_port: int,
) -> None:
    url = f"http://127.0.0.1:{simulator_port}"
    before = httpx.get(f"{url}/api/tags").json()
    result = auth_result(Target(name="bare", url=url))
    assert result.status is Status.FAIL
    assert result.findings[0].failure_class is FailureClass.OPEN_ACCESS
    assert [f.failure_class for f in result.findings[1:]] == [FailureClass.EXPOSED] * 6
    assert result.details["write_endpoints"] == {
        "pull": 400, "push": 400, "delete": 400, "create": 400, "copy": 400, "blobs": 404,
    }  # fmt: skip
    assert httpx.get(f"{url}/api/tags").json() == before


@pytest.mark.integration
def test_check_write_endpoints_false_skips_them_and_says_so(simulator_port: int) -> None:
    target = Target(
        name="self",
        url=f"http://127.0.0.1:{simulator_port}",
        public_access=PublicAccess.OPEN,
        check_write_endpoints=False,
    )
    result = auth_result(target)
    assert result.status is Status.OK
    assert [f.message for f in result.findings] == [
        "open access, as declared (public_access: open): GET /api/tags answers 200",
        "write endpoints not probed (check_write_endpoints: false)",
    ]
    assert "write_endpoints" not in result.details


async def _refusing_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """/api/tags as Ollama; the write endpoints refused in three ways a proxy may refuse."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, path = head.split(" ", 2)[:2]
        length = next(
            (
                int(line.split(":", 1)[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        if path == "/api/tags":
            status, body = "200 OK", TAGS
        elif path in ("/api/pull", "/api/push"):
            status, body = "405 Method Not Allowed", b""
        elif path in ("/api/delete", "/api/create"):
            status, body = "401 Unauthorized", b'{"error":"unauthorized"}'
        else:
            return  # Caddy's `abort`: the connection closes without an answer
        if method == "HEAD":
            body = b""
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.mark.integration
def test_405_401_and_a_dropped_connection_are_refusals() -> None:
    async def main() -> CheckResult:
        server = await asyncio.start_server(_refusing_proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            target = Target(name="proxy", url=f"http://127.0.0.1:{port}", closed_ports=())
            run = await run_checks([target], only=["auth"])
        return run.results[0]

    result = asyncio.run(main())
    assert result.findings[0].failure_class is FailureClass.OPEN_ACCESS  # not declared open
    assert [f.message for f in result.findings[1:]] == [
        "POST /api/pull: refused (405)",
        "POST /api/push: refused (405)",
        "DELETE /api/delete: refused (401)",
        "POST /api/create: refused (401)",
        "POST /api/copy: refused (connection closed without an answer)",
        "HEAD /api/blobs/sha256:0…0: refused (connection closed without an answer)",
    ]
    assert result.details["write_endpoints"] == {
        "pull": 405, "push": 405, "delete": 401, "create": 401, "copy": None, "blobs": None,
    }  # fmt: skip
