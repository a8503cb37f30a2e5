"""The upstream client against real servers on 127.0.0.1: the simulator and a header echo."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.settings import NodeSpec, Timeouts
from ollama_fleet.gateway.upstream import Upstream, UpstreamError
from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

pytestmark = pytest.mark.integration

GZIPPED = gzip.compress(b'{"hello": "world"}')


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the request's headers as JSON; /gzip a gzipped body; /stall never answers,
    /silent sends headers and then nothing; both wait for the client to go."""
    if scope["type"] != "http":
        return
    await receive()
    if scope["path"] == "/stall":
        await receive()
        return
    headers = [(b"content-type", b"application/json"), (b"connection", b"x-private")]
    headers.append((b"x-private", b"hop"))
    if scope["path"] == "/gzip":
        headers.append((b"content-encoding", b"gzip"))
        body = GZIPPED
    else:
        body = json.dumps([[k.decode(), v.decode()] for k, v in scope["headers"]]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/silent":
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await receive()
        return
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def echo_node() -> Iterator[NodeSpec]:
    with serve_in_thread(echo) as port:
        yield NodeSpec(name="echo", url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def sim_node() -> Iterator[NodeSpec]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield NodeSpec(name="sim", url=f"http://127.0.0.1:{port}")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


TIMEOUTS = Timeouts(connect_s=5, first_byte_s=5, read_s=5)


async def exchange(
    node: NodeSpec, path: str, *, headers: list[tuple[str, str]], timeouts: Timeouts = TIMEOUTS
) -> tuple[int, dict[str, str], list[bytes]]:
    upstream = Upstream(timeouts)
    try:
        response = await upstream.open(node, "POST", path, headers=headers, body=b"{}")
        try:
            chunks = [chunk async for chunk in response.chunks()]
        finally:
            await response.aclose()
        return response.status, dict(response.headers), chunks
    finally:
        await upstream.aclose()


def test_headers_hop_by_hop_dropped_host_set_authorization_never_sent(echo_node: NodeSpec) -> None:
    sent = [
        ("Authorization", "Bearer ofk_secret"),
        ("Connection", "keep-alive, x-secret-hop"),
        ("X-Secret-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Host", "gateway.example"),
        ("Content-Length", "999"),
        ("Content-Type", "application/json"),
        ("X-Request-Id", "r-1"),
        ("Accept-Encoding", "gzip, br"),
    ]
    status, headers, chunks = run(exchange(echo_node, "/echo", headers=sent))
    seen = {name: value for name, value in json.loads(b"".join(chunks))}
    assert status == 200
    assert seen["host"] == f"127.0.0.1:{echo_node.url.rsplit(':', 1)[1]}"
    assert seen["x-request-id"] == "r-1"
    assert seen["content-type"] == "application/json"
    assert seen["content-length"] == "2"  # the body's real length
    for dropped in ("authorization", "x-secret-hop", "keep-alive", "te"):
        assert dropped not in seen
    # the node answers uncompressed: the usage scanner reads plain bytes, and an error chunk
    # appended to a broken stream cannot corrupt a compressed body
    assert "accept-encoding" not in seen
    assert "x-private" not in {k.lower() for k in headers}  # named in Connection: hop-by-hop
    assert "connection" not in {k.lower() for k in headers}


def test_a_node_that_compresses_anyway_passes_its_bytes_as_they_are(echo_node: NodeSpec) -> None:
    _, headers, chunks = run(exchange(echo_node, "/gzip", headers=[]))
    assert {k.lower(): v for k, v in headers.items()}["content-encoding"] == "gzip"
    assert b"".join(chunks) == GZIPPED


def test_a_stream_arrives_in_pieces_and_whole(sim_node: NodeSpec) -> None:
    async def main() -> list[bytes]:
        upstream = Upstream(TIMEOUTS)
        body = json.dumps(
            {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}],
             "options": {"num_predict": 5}}
        ).encode()  # fmt: skip
        try:
            response = await upstream.open(
                sim_node, "POST", "/api/chat", headers=[("Content-Type", "application/json")],
                body=body,
            )  # fmt: skip
            assert response.status == 200
            chunks = [chunk async for chunk in response.chunks()]
            await response.aclose()
            return chunks
        finally:
            await upstream.aclose()

    lines = b"".join(run(main())).splitlines()
    assert len(lines) == 6
    assert json.loads(lines[-1])["eval_count"] == 5


def test_connect_refused_is_a_connect_error() -> None:
    node = NodeSpec(name="dead", url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UpstreamError) as caught:
        run(exchange(node, "/api/chat", headers=[]))
    assert (caught.value.kind, caught.value.node) == ("connect", "dead")


def test_no_headers_in_time_and_no_chunk_in_time_are_timeouts(echo_node: NodeSpec) -> None:
    short = Timeouts(connect_s=5, first_byte_s=0.2, read_s=0.2)
    with pytest.raises(UpstreamError) as caught:
        run(exchange(echo_node, "/stall", headers=[], timeouts=short))
    assert caught.value.kind == "timeout"
    with pytest.raises(UpstreamError) as caught:
        run(exchange(echo_node, "/silent", headers=[], timeouts=short))
    assert caught.value.kind == "timeout"


def test_a_cut_stream_is_a_protocol_error() -> None:
    config = SimulatorConfig(tokens_per_second=0, faults=Faults(cut_stream_after=2))
    with serve_in_thread(create_app(config)) as port:
        node = NodeSpec(name="cut", url=f"http://127.0.0.1:{port}")
        body = b'{"model": "llama3.2:1b", "prompt": "hi"}'

        async def main() -> list[bytes]:
            upstream = Upstream(TIMEOUTS)
            got: list[bytes] = []
            try:
                response = await upstream.open(node, "POST", "/api/generate", headers=[], body=body)
                try:
                    async for chunk in response.chunks():
                        got.append(chunk)
                finally:
                    await response.aclose()
            finally:
                await upstream.aclose()
            return got

        with pytest.raises(UpstreamError) as caught:
            run(main())
    assert caught.value.kind == "protocol"


def test_get_json(sim_node: NodeSpec, echo_node: NodeSpec) -> None:
    async def main() -> tuple[Any, list[UpstreamError]]:
        upstream = Upstream(TIMEOUTS)
        errors = []
        try:
            version = await upstream.get_json(sim_node, "/api/version", timeout_s=5)
            for node, path in ((sim_node, "/api/nope"), (echo_node, "/gzip")):
                try:
                    await upstream.get_json(node, path, timeout_s=5)
                except UpstreamError as exc:
                    errors.append(exc)
            return version, errors
        finally:
            await upstream.aclose()

    version, errors = run(main())
    assert isinstance(version["version"], str)
    assert [e.kind for e in errors] == ["protocol", "protocol"]
    assert "HTTP 404" in str(errors[0])
    assert "not JSON" in str(errors[1])
