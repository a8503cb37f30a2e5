"""exposure: ports that must be closed refuse a TCP connection from here; open ones accept."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit

from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, fail, ok
from ollama_fleet.checks.probe import ProbeContext, Stopwatch


async def tcp_state(host: str, port: int, *, timeout_s: float) -> str:
    """'open', 'refused', 'timeout' or 'dns' for a TCP connect from here."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return "timeout"
    except socket.gaierror:
        return "dns"
    except OSError:
        return "refused"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "open"


async def probe_exposure(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "exposure")
    host = urlsplit(ctx.target.url).hostname or ""
    closed, opened = ctx.target.closed_ports, ctx.target.open_ports
    states = await asyncio.gather(
        *(tcp_state(host, port, timeout_s=ctx.settings.port_timeout_s) for port in closed + opened)
    )
    by_port = dict(zip(closed + opened, states, strict=True))
    findings: list[Finding] = []
    if "dns" in states:
        findings.append(fail(FailureClass.DNS, f"{host} does not resolve"))
    for port in closed:
        if by_port[port] == "open":
            findings.append(fail(FailureClass.EXPOSED, f"port {port} accepts connections"))
        elif by_port[port] != "dns":
            findings.append(ok(f"port {port} closed ({by_port[port]})"))
    for port in opened:
        state = by_port[port]
        if state == "open":
            findings.append(ok(f"port {port} open"))
        elif state == "refused":
            findings.append(fail(FailureClass.REFUSED, f"port {port} refuses connections"))
        elif state == "timeout":
            findings.append(fail(FailureClass.CONNECT_TIMEOUT, f"port {port}: connect timed out"))
    return watch.result(findings, {"host": host, "ports": {str(p): s for p, s in by_port.items()}})
