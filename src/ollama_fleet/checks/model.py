"""Typed, frozen records shared by probes, the runner and the reporters."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """Outcome of one check. Ordered: ok < warn < fail."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]


_STATUS_RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


class FailureClass(enum.StrEnum):
    """What kind of problem a warn or fail is; each has a default hint (HINTS)."""

    DNS = "dns"
    REFUSED = "refused"
    CONNECT_TIMEOUT = "connect_timeout"
    TLS_TIMEOUT = "tls_timeout"
    READ_TIMEOUT = "read_timeout"
    SLOW = "slow"
    TLS_EXPIRED = "tls_expired"
    TLS_HOSTNAME = "tls_hostname"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_PROTOCOL = "tls_protocol"
    AUTH = "auth"
    OPEN_ACCESS = "open_access"
    CPU_FALLBACK = "cpu_fallback"
    MODEL_MISSING = "model_missing"
    OVERLOAD = "overload"
    SERVER_ERROR = "server_error"
    BAD_RESPONSE = "bad_response"
    EXPOSED = "exposed"


HINTS: Mapping[FailureClass, str] = {
    FailureClass.DNS: "the name does not resolve: check the URL's host name and the DNS record",
    FailureClass.REFUSED: "nothing listens there: is the service (Caddy, gateway, Ollama) running "
    "and the port open in the firewall?",
    FailureClass.CONNECT_TIMEOUT: "no answer to the TCP connect: a firewall drops the packets, "
    "or the host is down",
    FailureClass.TLS_TIMEOUT: "the TCP connect succeeded but no TLS handshake came back: "
    "something that does not speak TLS listens on this port (plain HTTP, Ollama itself), or "
    "the proxy hangs; check the URL's scheme and port",
    FailureClass.SLOW: "the answer came, but slower than the latency thresholds allow: look at "
    "the host's load (`nvidia-smi`, `journalctl -u ollama`) and the network path, or set "
    "latency_thresholds for this host if it is slow by design (--latency with --url)",
    FailureClass.READ_TIMEOUT: "connected, but the answer was too slow: the server is overloaded "
    "or a model is still loading; see `journalctl -u ollama` on the host",
    FailureClass.TLS_EXPIRED: "the certificate is outside its validity period: renew it "
    "(Caddy renews ACME certificates itself when it can reach the CA), or fix the clock",
    FailureClass.TLS_HOSTNAME: "the certificate does not name this host: issue it for the "
    "public name, or use the name it was issued for",
    FailureClass.TLS_UNTRUSTED: "the certificate chain is not trusted: serve the full chain, "
    "or pass the private CA (tls_ca_file / --ca-file)",
    FailureClass.TLS_PROTOCOL: "the TLS setup is weak or broken: allow only TLS 1.2 and 1.3 and "
    "check the proxy's TLS configuration",
    FailureClass.AUTH: "authentication is wrong: check the API key, or why the endpoint "
    "answers without one",
    FailureClass.OPEN_ACCESS: "anyone who reaches this URL can use its models without a key: "
    "put the gateway (or Caddy basicauth) in front of Ollama, or, if the host is open on "
    "purpose, declare `public_access: open` for it (--public-access open with --url)",
    FailureClass.CPU_FALLBACK: "the model answered from the CPU, not the GPU: check `nvidia-smi` "
    "on the host, then `journalctl -u ollama` for the CUDA error (a driver awaiting its reboot, "
    "a missing /dev/nvidia-uvm, or a model larger than the VRAM)",
    FailureClass.MODEL_MISSING: "a required model is not on the host: list it in "
    "required_models and run `ollama-fleet deploy INVENTORY --roles models`",
    FailureClass.OVERLOAD: "the server sheds load (429/503): raise ollama_num_parallel or "
    "ollama_max_queue in the inventory and run `ollama-fleet deploy INVENTORY --roles ollama`, "
    "add a node, or lower the request rate",
    FailureClass.SERVER_ERROR: "the server failed (5xx or an error inside the stream): "
    "read `journalctl -u ollama` on the host",
    FailureClass.BAD_RESPONSE: "the answer is not what Ollama sends: something else answers "
    "on this URL, or a proxy mangles or cuts the response",
    FailureClass.EXPOSED: "a port that must be closed accepts connections from here: let the "
    "firewall role manage the host (firewall_enabled; only SSH, 80 and 443 come in, plus "
    "firewall_extra_tcp_ports) and keep ollama_host on 127.0.0.1",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One observation inside a check; a check's status is the worst of its findings."""

    status: Status
    message: str
    failure_class: FailureClass | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        if self.status is not Status.OK and self.failure_class is None:
            raise ValueError(f"a {self.status} finding needs a failure class: {self.message}")


def ok(message: str) -> Finding:
    return Finding(status=Status.OK, message=message)


def warn(failure_class: FailureClass, message: str, hint: str | None = None) -> Finding:
    return Finding(
        status=Status.WARN,
        message=message,
        failure_class=failure_class,
        hint=hint or HINTS[failure_class],
    )


def fail(failure_class: FailureClass, message: str, hint: str | None = None) -> Finding:
    return Finding(
        status=Status.FAIL,
        message=message,
        failure_class=failure_class,
        hint=hint or HINTS[failure_class],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of one check against one target.

    `status`, `failure_class`, `summary` and `hint` come from the worst finding; `details`
    holds measured facts (timings in ms, TLS facts, model lists) as JSON-ready values.

    Timings convention: every check that makes an HTTP request to the target puts that
    request's `details["timings"]`: `connect_ms` and `tls_ms` (how long the TCP connect and
    the TLS handshake took), `first_byte_ms` (the answer's headers) and `total_ms` (the
    whole answer read), both from the start of the request, and for chat `first_token_ms`
    (the first streamed token, from the start of the request). A step that did not happen
    is None: a reused connection has no connect_ms or tls_ms, plain HTTP no tls_ms.
    `elapsed_ms` is the whole check, also for one stopped by a timeout.
    """

    target: str
    url: str
    check: str
    findings: tuple[Finding, ...]
    elapsed_ms: float
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> Finding:
        # First of the worst, so a check lists its most important finding first.
        return max(self.findings, key=lambda f: f.status.rank)

    @property
    def status(self) -> Status:
        return self.worst.status

    @property
    def failure_class(self) -> FailureClass | None:
        return self.worst.failure_class

    @property
    def summary(self) -> str:
        return self.worst.message

    @property
    def hint(self) -> str | None:
        return self.worst.hint


CHECK_NAMES: tuple[str, ...] = ("connectivity", "tls", "models", "chat", "auth", "exposure")


@dataclass(frozen=True, slots=True, kw_only=True)
class RequiredModel:
    """A model that must be present, optionally pinned to a digest (sha256 hex, any prefix)."""

    name: str
    digest: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsPolicy:
    """What a target's TLS must look like."""

    ca_file: str | None = None
    warn_days: int = 21
    fail_days: int = 3
    http_url: str | None = None
    require_hsts: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """A warn and a fail level. For times (ms) higher is worse; for rates, lower is worse."""

    warn: float
    fail: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyPolicy:
    """How slow a target may be before a check warns or fails.

    Times in ms (connect, first byte of an answer, first streamed token); `tokens_per_s` is
    a minimum rate of the streamed chat. The defaults suit an interactive service on a
    GPU: a CPU-only or cross-continent host sets its own (inventory `latency_thresholds`).
    Each fail level sits below the timeout that would otherwise end the step first (connect
    3 s, read 15 s), so a slow answer is reported as slow, not as a timeout.
    """

    connect_ms: Threshold = field(default_factory=lambda: Threshold(warn=500, fail=2000))
    first_byte_ms: Threshold = field(default_factory=lambda: Threshold(warn=2000, fail=10000))
    # the streamed chat follows the plain one, so the model is loaded: no load time in it
    first_token_ms: Threshold = field(default_factory=lambda: Threshold(warn=2000, fail=10000))
    tokens_per_s: Threshold = field(default_factory=lambda: Threshold(warn=5, fail=1))


LATENCY_NAMES: tuple[str, ...] = ("connect_ms", "first_byte_ms", "first_token_ms", "tokens_per_s")


class PublicAccess(enum.StrEnum):
    """Whether anyone may use a target without a key: `closed` (the default) or `open`."""

    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One endpoint to verify: a public URL plus what must be true of it."""

    name: str
    url: str
    required_models: tuple[RequiredModel, ...] = ()
    chat_model: str | None = None
    tls: TlsPolicy = field(default_factory=TlsPolicy)
    latency: LatencyPolicy = field(default_factory=LatencyPolicy)
    # the inventory groups the host is in, for reports (empty for --url targets)
    groups: tuple[str, ...] = ()
    # no default: exposure runs only for ports the inventory or --closed-port names
    closed_ports: tuple[int, ...] = ()
    open_ports: tuple[int, ...] = ()
    # closed: a request without a key must be refused; open: it may generate, and the auth
    # check reports that instead of failing
    public_access: PublicAccess = PublicAccess.CLOSED
    # the write endpoints (pull, push, delete, ...) must be refused; off only where the URL
    # is Ollama itself on loopback (the host's self-check), where they answer by design
    check_write_endpoints: bool = True
    # a GPU node: after the chat, /api/ps must show the model in VRAM (else cpu_fallback)
    expect_gpu: bool = False
    api_key: str | None = field(default=None, repr=False)
    # closed_ports are reached through a forwarder that accepts every connection (qemu's user
    # network, a load balancer): judge them by whether anything answers, not by the accept
    port_forwarder: bool = False

    @property
    def model_for_chat(self) -> str | None:
        if self.chat_model:
            return self.chat_model
        return self.required_models[0].name if self.required_models else None


def overall_status(results: Iterable[CheckResult]) -> Status:
    """The worst status over all results; ok for none."""
    return max((r.status for r in results), key=lambda s: s.rank, default=Status.OK)


# the classes of a connection that never got anywhere: the target is unreachable
UNREACHABLE_CLASSES = frozenset(
    {FailureClass.DNS, FailureClass.REFUSED, FailureClass.CONNECT_TIMEOUT}
)


def unreachable_targets(results: Iterable[CheckResult]) -> tuple[str, ...]:
    """Targets whose requests never connected (exposure's port probes aside), sorted.

    A port that must be open and refuses is an exposure finding, not an unreachable host.
    """
    return tuple(
        sorted(
            {
                r.target
                for r in results
                if r.failure_class in UNREACHABLE_CLASSES and r.check != "exposure"
            }
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """Where a run came from, for the report: the command line, the inventory, the machine."""

    command: str = ""
    inventory: str = ""
    controller: str = ""

    @classmethod
    def here(cls, *, command: str, inventory: str) -> RunContext:
        """A run started on this machine (`controller` is its host name)."""
        import platform

        return cls(command=command, inventory=inventory, controller=platform.node())


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRun:
    """Everything a reporter needs: the results plus when and how long the run took."""

    results: tuple[CheckResult, ...]
    started_at: str  # ISO 8601, UTC
    duration_ms: float
    targets: tuple[str, ...]
    # {target name: its inventory groups}; targets without groups may be absent
    target_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    context: RunContext = field(default_factory=RunContext)

    @property
    def status(self) -> Status:
        return overall_status(self.results)
