"""Child processes for the monitor's benchmark: start, wait for, stop, measure from /proc.

Each child runs in its own process group, so stopping it also stops whatever it started;
CPU is read from /proc/PID/stat (user + system, the clock ticks the kernel counted), memory
from /proc/PID/status (VmRSS now, VmHWM the peak since the process started).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """A child did not start or answer as expected; the message says which and where to look."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Child:
    """One started process and the file its stdout and stderr go to."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start(stack: ExitStack, name: str, command: Sequence[str], log: Path) -> Child:
    """`command` in a new process group, its output in `log`, stopped when `stack` closes."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    child = Child(name=name, proc=proc, log=log)
    stack.callback(stop, child)
    return child


def wait_for_line(child: Child, pattern: str, *, timeout_s: float = 30.0) -> re.Match[str]:
    """The first match of `pattern` in the child's log, once it is there."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = compiled.search(child.log.read_text(errors="replace"))
        if found:
            return found
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited with {child.proc.returncode}{tail(child)}")
        time.sleep(0.05)
    raise BenchError(f"{child.name} printed no {pattern!r} in {timeout_s:g} s{tail(child)}")


def tail(child: Child, lines: int = 5) -> str:
    """The end of the child's log, for an error message (the log may go with its temp dir)."""
    text = child.log.read_text(errors="replace").splitlines()[-lines:]
    return "".join(f"\n  {child.name}: {line}" for line in text)


def stop(child: Child) -> None:
    """SIGTERM to the child's process group, SIGKILL when it does not end in time."""
    if child.proc.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGTERM)
            child.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.proc.wait()
        except ProcessLookupError:
            child.proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # what the child started and left in its group


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


class RssSampler:
    """The highest VmRSS of some processes, sampled in a thread while the window lasts."""

    def __init__(self, pids: Sequence[int], *, every_s: float = 0.5) -> None:
        self.pids = list(pids)
        self.every_s = every_s
        self.peak_kib = dict.fromkeys(self.pids, 0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        for pid in self.pids:
            rss = memory_kib(pid)["VmRSS"]
            self.peak_kib[pid] = max(self.peak_kib[pid], rss)

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            self._sample()


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What one process used in the window."""

    name: str
    cpu_s: float
    peak_rss_kib: int  # the highest VmRSS sampled in the window
    end_rss_kib: int
    hwm_kib: int  # VmHWM: the peak since the process started, warm-up included


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """One side's measured window: its processes, what they did, the simulators' CPU."""

    usage: tuple[Usage, ...]
    done: int
    ok: int
    seconds: float
    simulators_cpu_s: float

    @property
    def cpu_s(self) -> float:
        return sum(u.cpu_s for u in self.usage)


def measure(
    children: Sequence[Child],
    simulators: Sequence[Child],
    count: Callable[[], tuple[int, int]],
    *,
    warmup_s: float,
    seconds: float,
) -> Window:
    """Wait `warmup_s`, then measure `seconds`; `count()` gives (done, ok) so far."""
    time.sleep(warmup_s)
    pids = [c.pid for c in children]
    sims = [s.pid for s in simulators]
    done0, ok0 = count()
    cpu0 = [cpu_seconds(pid) for pid in pids]
    sim0 = sum(cpu_seconds(pid) for pid in sims)
    start_time = time.monotonic()
    with RssSampler(pids) as sampler:
        time.sleep(seconds)
        cpu1 = [cpu_seconds(pid) for pid in pids]
        sim1 = sum(cpu_seconds(pid) for pid in sims)
        elapsed = time.monotonic() - start_time
    done1, ok1 = count()  # after the CPU: the count's own request is not in the window
    usage = []
    for child, before, after in zip(children, cpu0, cpu1, strict=True):
        memory = memory_kib(child.pid)
        usage.append(
            Usage(
                name=child.name,
                cpu_s=after - before,
                peak_rss_kib=sampler.peak_kib[child.pid],
                end_rss_kib=memory["VmRSS"],
                hwm_kib=memory["VmHWM"],
            )
        )
    return Window(
        usage=tuple(usage),
        done=done1 - done0,
        ok=ok1 - ok0,
        seconds=elapsed,
        simulators_cpu_s=sim1 - sim0,
    )
