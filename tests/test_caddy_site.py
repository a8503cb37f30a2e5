"""The Caddyfile the caddy role deploys, run by the real Caddy in front of the simulator.

What a stranger on the internet can do through it: generate, list and show, yes; pull, push,
delete, create, copy and upload blobs, no (403 with a JSON error), however the path is spelt,
unless caddy_open_admin_endpoints says so. Caddy's own admin API is a unix socket, not TCP.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet import hostvars, render
from ollama_fleet.checks.model import Status
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.targets import target_from_url
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.caddy import CaddyProcess, caddy_binary
from ollama_fleet.testbed.servers import free_ports, serve_in_thread

pytestmark = pytest.mark.integration

WRITE_REQUESTS = [
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/create"),
    ("POST", "/api/copy"),
    ("POST", "/api/blobs/sha256:" + "0" * 64),
    ("HEAD", "/api/blobs/sha256:" + "0" * 64),
]
# The same endpoints, spelt the ways a client (or an attacker) may spell them.
SPELLINGS = [
    "/API/PULL",
    "/api/pull/",
    "//api/pull",
    "/api/%70ull",
    "/api/./pull",
    "/api/x/../pull",
    "/api/pull?insecure=true",
    "/api/Delete",
]


@dataclass(frozen=True)
class Site:
    url: str
    admin_socket: Path
    caddyfile: Path


def deployed_caddyfile(
    folder: Path,
    *,
    upstream_port: int,
    ports: list[int],
    upstream_is_ollama: bool = True,
    **values: Any,
) -> Path:
    """The role's Caddyfile (tls internal), moved to loopback ports and a socket in `folder`."""
    text = render.render_caddyfile(
        hostvars.resolved(values, "caddy"),
        site_names=["localhost"],
        upstream=f"127.0.0.1:{upstream_port}",
        upstream_is_ollama=upstream_is_ollama,
        log_file=str(folder / "access.log"),
        admin_socket=str(folder / "admin.sock"),
    )
    https, http = ports
    assert "\nlocalhost {\n" in text
    text = text.replace("\nlocalhost {\n", f"\nlocalhost:{https} {{\n")
    text = text.replace("{\n\tadmin ", f"{{\n\thttp_port {http}\n\tadmin ", 1)
    path = folder / "Caddyfile"
    path.write_text(text)
    return path


@pytest.fixture(scope="module", params=[False, True], ids=["default", "open_admin"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("caddy-site")
    with serve_in_thread(create_app(SimulatorConfig())) as upstream_port:
        ports = free_ports(2)
        caddyfile = deployed_caddyfile(
            folder,
            upstream_port=upstream_port,
            ports=ports,
            caddy_open_admin_endpoints=request.param,
        )
        with CaddyProcess(caddyfile, ports=[ports[0]]):
            wait_for_certificate(ports[0])
            yield Site(f"https://localhost:{ports[0]}", folder / "admin.sock", caddyfile)


def wait_for_certificate(port: int, timeout_s: float = 30) -> None:
    """`tls internal` issues the site's certificate just after Caddy listens: until then a
    handshake gets an internal-error alert, so wait for the first one that completes."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost"),
            ):
                return
        except (ssl.SSLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def client(site: Site) -> Iterator[httpx.Client]:
    # tls internal: Caddy's local CA is not trusted here, and TLS is not what this file tests
    with httpx.Client(base_url=site.url, verify=False, timeout=20) as http:  # noqa: S501
        yield http


def is_open(site: Site) -> bool:
    return "@ollama_admin" not in site.caddyfile.read_text()


def test_generation_listing_and_showing_pass(client: httpx.Client) -> None:
    chat = client.post(
        "/api/chat",
        json={
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
        },
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["message"]["content"]
    assert client.get("/api/tags").status_code == 200
    assert client.post("/api/show", json={"model": "llama3.2:1b"}).status_code == 200
    assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize(("method", "path"), WRITE_REQUESTS)
def test_write_endpoints_are_refused_with_a_json_403(
    site: Site, client: httpx.Client, method: str, path: str
) -> None:
    answer = client.request(method, path, content=b"{}")
    if is_open(site):
        assert answer.status_code != 403  # the simulator answers: deliberately opened
        assert answer.headers.get("x-ollama-simulator") == "1"
        return
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/json"
    assert "x-ollama-simulator" not in answer.headers  # never reached Ollama
    if method != "HEAD":
        assert "caddy_open_admin_endpoints" in answer.json()["error"]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_of_a_write_endpoint_gets_through(site: Site, path: str) -> None:
    port = int(site.url.rsplit(":", 1)[1])
    # curl, because httpx (like most clients) normalises the path before sending it
    sent = subprocess.run(
        [
            "curl",
            "-sk",
            "--http1.1",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "--data",
            "{}",
            f"https://localhost:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    # opened on purpose: whatever Ollama makes of the spelling, Caddy does not refuse it
    assert (sent.stdout != "403") if is_open(site) else (sent.stdout == "403"), path


def test_caddys_admin_api_is_a_unix_socket_that_reload_uses(site: Site) -> None:
    text = site.caddyfile.read_text()
    assert f"admin unix/{site.admin_socket}" in text
    with socket.socket(socket.AF_UNIX) as unix:
        unix.connect(str(site.admin_socket))
        unix.sendall(b"GET /config/ HTTP/1.0\r\nHost: \r\n\r\n")
        answer = b""
        while chunk := unix.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", head
    assert json.loads(body)["admin"]["listen"] == f"unix/{site.admin_socket}"
    # Debian's unit reloads with `caddy reload --config /etc/caddy/Caddyfile --force`
    reloaded = subprocess.run(
        [
            caddy_binary(),
            "reload",
            "--adapter",
            "caddyfile",
            "--config",
            str(site.caddyfile),
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert reloaded.returncode == 0, reloaded.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 2019), timeout=1).close()


def test_the_site_serves_tls_on_loopback(site: Site) -> None:
    port = int(site.url.rsplit(":", 1)[1])
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_the_checks_verify_tls_internal_against_caddys_own_root(site: Site) -> None:
    # what the deploy fetches from each `caddy_tls: internal` host (deploy.CADDY_LOCAL_ROOT),
    # here from this Caddy's data folder: the chain and the name verify against it
    root = site.caddyfile.parent / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    assert root.read_text().startswith("-----BEGIN CERTIFICATE-----")
    trusted = asyncio.run(run_checks([target_from_url(site.url, ca_file=str(root))], only=["tls"]))
    assert trusted.results[0].status is Status.OK, trusted.results[0].summary
    assert "chain trusted for localhost" in trusted.results[0].findings[0].message
    untrusted = asyncio.run(run_checks([target_from_url(site.url)], only=["tls"]))
    assert untrusted.results[0].status is Status.FAIL  # verification stays on without it


# -- in front of the gateway ----------------------------------------------------------------------

GATEWAY_KEY = "ofk_caddy-site-test-key"


@pytest.fixture(scope="module")
def gateway_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The role's Caddyfile in front of the real gateway (`ollama-fleet gateway`, as its unit
    runs it, on the config the services role renders) in front of the simulator."""
    folder = tmp_path_factory.mktemp("caddy-gateway")
    with serve_in_thread(create_app(SimulatorConfig())) as ollama_port:
        gateway_port, https, http = free_ports(3)
        services = hostvars.resolved(
            {
                "gateway_enabled": True,
                "gateway_port": gateway_port,
                "gateway_api_keys": [GATEWAY_KEY],
            },
            "services",
        )
        config = folder / "gateway.yml"
        config.write_text(
            render.render_gateway_config(services, ollama_host=f"127.0.0.1:{ollama_port}")
        )
        command = [sys.executable, "-m", "ollama_fleet", "gateway", "--config", str(config)]
        with subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as gateway:
            try:
                wait_for_health(gateway_port, gateway)
                caddyfile = deployed_caddyfile(
                    folder,
                    upstream_port=gateway_port,
                    ports=[https, http],
                    upstream_is_ollama=False,
                )
                with CaddyProcess(caddyfile, ports=[https]):
                    wait_for_certificate(https)
                    yield f"https://localhost:{https}"
            finally:
                gateway.terminate()
                gateway.wait(timeout=30)


def wait_for_health(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            error = process.stderr.read().decode() if process.stderr and process.poll() else ""
            pytest.fail(f"the gateway did not answer /health on {port}: {error[-2000:]}")
        time.sleep(0.2)


def test_through_caddy_the_gateway_wants_a_key_and_streams_with_one(gateway_site: str) -> None:
    auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    with httpx.Client(base_url=gateway_site, verify=False, timeout=30) as http:  # noqa: S501
        assert http.get("/api/tags").status_code == 401
        assert (
            http.get("/api/tags", headers={"Authorization": "Bearer ofk_wrong"}).status_code == 401
        )
        assert http.get("/api/tags", headers=auth).status_code == 200
        body = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}
        with http.stream("POST", "/api/chat", json=body, headers=auth) as answer:
            assert answer.status_code == 200
            lines = [json.loads(line) for line in answer.iter_lines() if line]
        assert len(lines) > 1 and lines[-1]["done"] is True  # streamed, line by line


def test_through_caddy_the_gateways_metrics_and_the_write_endpoints_stay_closed(
    gateway_site: str,
) -> None:
    auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    with httpx.Client(base_url=gateway_site, verify=False, timeout=30) as http:  # noqa: S501
        for method, path in WRITE_REQUESTS:
            refused = http.request(method, path, headers=auth)
            assert refused.status_code == 403, (method, path)


@pytest.mark.parametrize(
    "path", ["/metrics", "/METRICS", "/metrics/", "//metrics", "/%6detrics", "/x/../metrics"]
)
def test_no_spelling_of_the_gateways_metrics_gets_through_caddy(
    gateway_site: str, path: str
) -> None:
    # curl, because httpx (like most clients) normalises the path before sending it
    sent = subprocess.run(
        ["curl", "-sk", "--http1.1", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}"]
        + [gateway_site + path],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sent.stdout == "404", path
