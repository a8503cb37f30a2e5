"""exposure: ports that must be closed refuse a TCP connection; ports that must be open accept.

Behind a port forwarder (the target's `port_forwarder`: qemu's user network, a load balancer)
every connection is accepted, even when nothing listens behind it; there a closed port is one
where nothing answers an HTTP question, and the finding says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit

from ollama_fleet.checks.http import Phase, network_step
from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, fail, ok
from ollama_fleet.checks.probe import ProbeContext, Stopwatch

PROBE_REQUEST = b"GET /api/version HTTP/1.0\r\nHost: localhost\r\n\r\n"


async def tcp_state(host: str, port: int, *, timeout_s: float, speak: bool = False) -> str:
    """'open', 'refused', 'timeout' or 'dns' for a TCP connect from here.

    With `speak`, an accepted connection is asked an HTTP question: 'open' if anything comes
    back, 'dropped' if the peer closes without a byte, 'silent' if nothing comes in time.
    """
    with network_step(Phase.CONNECT, f"TCP connect to port {port}") as step:
        try:
            connecting = asyncio.open_connection(host, port)
            reader, writer = await asyncio.wait_for(connecting, timeout_s)
        except TimeoutError:
            return "timeout"
        except socket.gaierror:
            return "dns"
        except OSError:
            return "refused"
        try:
            if not speak:
                return "open"
            step.label, step.phase = f"HTTP question to port {port}", Phase.WAIT
            try:
                writer.write(PROBE_REQUEST)
                await writer.drain()
                return "open" if await asyncio.wait_for(reader.read(1), timeout_s) else "dropped"
            except TimeoutError:
                return "silent"
            except OSError:
                return "dropped"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


CLOSED_WORDING = {
    "refused": "closed (refused)",
    "timeout": "closed (timeout)",
    "dropped": "closed (a forwarder accepted, then closed: nothing listens behind it)",
    "silent": "closed (accepted by a forwarder, but nothing answered)",
}


async def probe_exposure(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "exposure")
    host = urlsplit(ctx.target.url).hostname or ""
    closed, opened = ctx.target.closed_ports, ctx.target.open_ports
    timeout = ctx.settings.port_timeout_s
    states = await asyncio.gather(
        *(
            tcp_state(host, port, timeout_s=timeout, speak=ctx.target.port_forwarder)
            for port in closed
        ),
        *(tcp_state(host, port, timeout_s=timeout) for port in opened),
    )
    by_port = dict(zip(closed + opened, states, strict=True))
    findings: list[Finding] = []
    if "dns" in states:
        findings.append(fail(FailureClass.DNS, f"{host} does not resolve"))
    for port in closed:
        if by_port[port] == "open":
            findings.append(fail(FailureClass.EXPOSED, f"port {port} accepts connections"))
        elif by_port[port] != "dns":
            findings.append(ok(f"port {port} {CLOSED_WORDING[by_port[port]]}"))
    for port in opened:
        state = by_port[port]
        if state == "open":
            findings.append(ok(f"port {port} open"))
        elif state == "refused":
            findings.append(fail(FailureClass.REFUSED, f"port {port} refuses connections"))
        elif state == "timeout":
            findings.append(fail(FailureClass.CONNECT_TIMEOUT, f"port {port}: connect timed out"))
    return watch.result(findings, {"host": host, "ports": {str(p): s for p, s in by_port.items()}})
