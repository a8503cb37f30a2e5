"""The deploy's child process: pyinfra driven from a JSON spec, JSON events out.

The deploy's child process: `python -m ollama_fleet.deploys.runner` reads a JSON spec on stdin
(hosts with their data, roles, dry/diff) and drives pyinfra's API, writing one JSON event per
line to its standard output. pyinfra's own log goes to standard error. Every secret named in
the spec is replaced by "***" in both, so no decrypted vault value leaves this process.
"""

from __future__ import annotations

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()  # as pyinfra's CLI does: parallel SSH through gevent; this process only

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import IO, Any  # noqa: E402

import pyinfra  # noqa: E402
from pyinfra.api import BaseStateCallback, Config, Inventory, State  # noqa: E402
from pyinfra.api.connect import connect_all, disconnect_all  # noqa: E402
from pyinfra.api.exceptions import PyinfraError  # noqa: E402
from pyinfra.api.host import Host  # noqa: E402
from pyinfra.api.operation import OperationMeta  # noqa: E402
from pyinfra.api.operations import run_ops  # noqa: E402
from pyinfra.api.state import StateStage  # noqa: E402
from pyinfra.context import ctx_host, ctx_state  # noqa: E402

from ollama_fleet.deploys.site import site  # noqa: E402
from ollama_fleet.deploys.unreachable import describe_connect_error  # noqa: E402
from ollama_fleet.errors import FleetError  # noqa: E402
from ollama_fleet.redact import Redact, redact_strings, redactor  # noqa: E402


class RedactingFilter(logging.Filter):
    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        return True


class QuietConnectErrors(logging.Filter):
    """Without -v: pyinfra's and paramiko's words on a failed connection stay out of the log.

    The "connect" event says it once, in one line (deploys.unreachable); -v shows the rest.
    """

    _NOISE = re.compile(
        r"Could not connect|SSH error|Could not resolve|EOF error|Authentication error|"
        r"Failed to load host keys|Error reading SSH protocol banner|Exception \(client\)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return self._NOISE.search(record.getMessage()) is None


class Events:
    """One JSON object per line on the events stream."""

    def __init__(self, stream: IO[str], redact: Redact) -> None:
        self.stream, self.redact = stream, redact

    def emit(self, event: str, **fields: Any) -> None:
        # redacted before encoding: JSON escapes (\u00f6, \") would hide a secret from a text scan
        line = json.dumps(redact_strings({"event": event, **fields}, self.redact))
        self.stream.write(line + "\n")
        self.stream.flush()


def op_name(state: State, host: Host, op_hash: str) -> str:
    """The operation's name on this host (pyinfra merges the names of all hosts per hash)."""
    data = state.ops[host].get(op_hash)
    name = data.global_arguments.get("name") if data is not None else None
    if name:
        return str(name)
    names = sorted(state.get_op_meta(op_hash).names)
    return names[0] if names else op_hash


def error_text(state: State, host: Host, op_hash: str) -> str:
    """The last lines the failed operation wrote (stderr first), for the summary."""
    meta = state.get_op_data_for_host(host, op_hash).operation_meta
    output = meta._combined_output  # noqa: SLF001 - pyinfra exposes no public accessor
    if output is None:
        return ""
    lines = [line.line for line in output if line.buffer_name == "stderr"]
    lines = lines or [line.line for line in output]
    return "\n".join(lines[-12:])


class Progress(BaseStateCallback):
    def __init__(self, events: Events) -> None:
        self.events = events
        self.reported: set[tuple[str, str]] = set()

    def operation_end(self, state: State, op_hash: str) -> None:
        # pyinfra completes an operation's result only after its per-host callbacks, so the
        # results are read here, once every host has run it
        self.report(state, op_hash)

    def report(self, state: State, op_hash: str) -> None:
        """Emit each host's result of `op_hash` once (also called after pyinfra stopped early:
        when the last host fails, it raises before `operation_end`)."""
        for host in state.inventory:
            data = state.ops.get(host, {}).get(op_hash)
            if data is None or not data.operation_meta.is_complete():
                continue
            if (host.name, op_hash) in self.reported:
                continue
            self.reported.add((host.name, op_hash))
            meta, name = data.operation_meta, op_name(state, host, op_hash)
            if meta.did_succeed():
                self.events.emit("op", host=host.name, op=name, ok=True, changed=meta.did_change())
            else:
                self.events.emit(
                    "op",
                    host=host.name,
                    op=name,
                    ok=False,
                    changed=False,
                    error=error_text(state, host, op_hash),
                )

    def host_connect_error(self, state: State, host: Host, error: Any) -> None:
        self.events.emit(
            "connect",
            host=host.name,
            ok=False,
            unreachable=True,
            detail=str(error),
            error=describe_connect_error(
                str(error),
                hostname=str(host.data.get("ssh_hostname") or host.name),
                port=host.data.get("ssh_port") or 22,
                user=str(host.data.get("ssh_user") or ""),
            ),
        )


def build_state(spec: dict[str, Any]) -> State:
    hosts = [(h["name"], h["data"]) for h in spec["hosts"]]
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for entry in spec["hosts"]:
        for group in entry["groups"]:
            if group != "all":
                groups.setdefault(group, ([], {}))[0].append(entry["name"])
    inventory = Inventory((hosts, {}), **groups)
    config = Config(DIFF=bool(spec.get("diff")), PARALLEL=int(spec.get("parallel", 10)))
    return State(inventory=inventory, config=config)


def plan(state: State, events: Events) -> None:
    """Dry run: what each operation would do on each host, without running it."""
    for op_hash in state.get_op_order():
        for host in state.inventory.get_active_hosts():
            data = state.ops[host].get(op_hash)
            if host in state.failed_hosts:
                continue
            if data is None:
                continue
            with _context(state, host):
                change = data.operation_meta.will_change and _conditions_hold(data)
            events.emit("plan", host=host.name, op=op_name(state, host, op_hash), change=change)


def _conditions_hold(data: Any) -> bool:
    """An operation's `_if` conditions, judged on the other operations' planned changes."""
    conditions = data.global_arguments.get("_if")
    if not conditions:
        return True
    conditions = conditions if isinstance(conditions, list) else [conditions]
    original = OperationMeta.did_change
    OperationMeta.did_change = lambda meta: bool(meta._maybe_is_change)  # type: ignore[method-assign,assignment]
    try:
        return all(condition() for condition in conditions)
    finally:
        OperationMeta.did_change = original  # type: ignore[method-assign]


class _context:  # pyinfra's context for one host, as operations see it while executing
    def __init__(self, state: State, host: Host) -> None:
        from pyinfra.context import ctx_host, ctx_state

        self.managers = (ctx_state.use(state), ctx_host.use(host))

    def __enter__(self) -> None:
        for manager in self.managers:
            manager.__enter__()

    def __exit__(self, *exc: object) -> None:
        for manager in reversed(self.managers):
            manager.__exit__(*exc)


def read_files(state: State, paths: list[str], events: Events) -> None:
    """Read-only: each host's text of each of `paths` (None when absent), as "file" events."""
    from pyinfra.facts.files import FileContents

    for host in list(state.inventory.get_active_hosts()):
        events.emit("connect", host=host.name, ok=True)
        with ctx_state.use(state), ctx_host.use(host):
            for path in paths:
                lines = host.get_fact(FileContents, path=path)
                text = None if lines is None else "\n".join(lines) + "\n"
                events.emit("file", host=host.name, path=path, text=text)


def probe_hosts(state: State, scripts: dict[str, str], timeout_s: int, events: Events) -> None:
    """Read-only: each host's own script (diagnose's facts), run on all hosts at once.

    One "probe" event per host with the script's whole output, or its error.
    """
    import gevent
    from pyinfra.facts.server import Command

    def one(host: Host) -> None:
        events.emit("connect", host=host.name, ok=True)
        try:
            with ctx_state.use(state), ctx_host.use(host):
                output = host.get_fact(Command, command=scripts[host.name], _timeout=timeout_s)
        except Exception as exc:  # one host's failure is that host's finding
            events.emit("probe", host=host.name, ok=False, error=f"{type(exc).__name__}: {exc}")
            return
        if output is None:  # pyinfra returns no output for a command that failed
            events.emit("probe", host=host.name, ok=False, error="the facts script failed")
            return
        events.emit("probe", host=host.name, ok=True, output=output)

    active = [h for h in state.inventory.get_active_hosts() if h.name in scripts]
    gevent.joinall([gevent.spawn(one, host) for host in active])


def run(spec: dict[str, Any], events: Events) -> int:
    # As pyinfra's CLI: operations are identified by where they are called (line numbers), so
    # hosts that take different branches (GPU or not) still line up operation by operation.
    pyinfra.is_cli = True
    state = build_state(spec)
    progress = Progress(events)
    state.add_callback_handler(progress)
    failed: set[str] = set()
    try:
        connect_all(state)
    except PyinfraError as exc:
        events.emit("done", failed=[h["name"] for h in spec["hosts"]], error=str(exc))
        return 1
    if "probe" in spec:  # diagnose: a read-only script per host, nothing planned or changed
        probe_hosts(state, dict(spec["probe"]), int(spec.get("probe_timeout", 120)), events)
        disconnect_all(state)
        events.emit("done", failed=sorted(h.name for h in state.failed_hosts))
        return 1 if state.failed_hosts else 0
    if "read" in spec:  # nothing is planned or changed: facts only
        read_files(state, list(spec["read"]), events)
        disconnect_all(state)
        events.emit("done", failed=sorted(h.name for h in state.failed_hosts))
        return 1 if state.failed_hosts else 0
    state.set_stage(StateStage.Prepare)
    for host in list(state.inventory.get_active_hosts()):
        events.emit("connect", host=host.name, ok=True)
        try:
            with ctx_state.use(state), ctx_host.use(host):
                site(spec["roles"], snapshot=spec.get("snapshot", True))
        except Exception as exc:  # a role refused this host: it fails, the others go on
            known = isinstance(exc, FleetError | PyinfraError)
            if not known:
                sys.stderr.write(events.redact(traceback.format_exc()))
            message = str(exc) if known else f"{type(exc).__name__}: {exc}"
            events.emit("prepare_error", host=host.name, error=message)
            failed.add(host.name)
            state.ops[host] = {}  # what it had planned before the refusal is dropped
            host.op_hash_order = []
    active = [h for h in state.inventory.get_active_hosts() if h.name not in failed]
    if failed and active:
        state.fail_hosts({h for h in state.inventory if h.name in failed})
    if spec.get("dry") and active:
        plan(state, events)
    elif active:
        state.set_stage(StateStage.Execute)
        try:
            run_ops(state)
        except PyinfraError as exc:
            if "No hosts remaining" not in str(exc):  # that one only means: every host failed
                events.emit("run_error", error=str(exc))
        finally:
            for op_hash in state.get_op_order():
                progress.report(state, op_hash)
    disconnect_all(state)
    failed |= {h.name for h in state.failed_hosts}
    events.emit("done", failed=sorted(failed))
    return 1 if failed else 0


def main() -> int:
    spec = json.load(sys.stdin)
    redact = redactor(spec.get("redact", []))
    events = Events(os.fdopen(os.dup(1), "w"), redact)
    os.dup2(2, 1)  # anything printed by pyinfra or a connector goes to stderr, not the events
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(redact))
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("pyinfra")
    logger.addHandler(handler)
    verbose = bool(spec.get("verbose"))
    logger.setLevel(logging.INFO if spec.get("diff") or verbose else logging.WARNING)
    logger.propagate = False
    if not verbose:
        handler.addFilter(QuietConnectErrors())
    # paramiko logs a traceback for a port that does not speak SSH: only with -v
    paramiko_log = logging.getLogger("paramiko")
    paramiko_log.propagate = False
    paramiko_log.addHandler(handler if verbose else logging.NullHandler())
    try:
        return run(spec, events)
    except Exception as exc:  # a bug or pyinfra internals: say so, exit distinctly
        sys.stderr.write(redact(traceback.format_exc()))
        events.emit("crash", error=f"{type(exc).__name__}: {exc}")
        return 3


if __name__ == "__main__":
    sys.exit(main())
