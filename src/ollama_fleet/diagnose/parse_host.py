"""The host's identity, clock and DNS from the probe's outputs, and the words for a failed command.

Every function here is pure and total: odd input gives None, never an exception.
"""

from __future__ import annotations

import ipaddress
import shlex

from .facts import Clock, Dns
from .probe import COMMAND_TIMEOUT_S, Output

_DENIED = (
    "permission denied",
    "operation not permitted",
    "insufficient permissions",
    "must be root",
    "access denied",
)


def failure_reason(output: Output | None, *, program: str) -> str:
    """One line saying why `program`'s output is not usable: "nft: not installed"."""
    if output is None:
        return f"{program}: not reported by the probe"
    if output.missing:
        return f"{program}: not installed"
    if output.timed_out:
        return f"{program}: timed out after {COMMAND_TIMEOUT_S} s"
    text = f"{output.stderr}\n{output.stdout}"
    if any(word in text.lower() for word in _DENIED):
        return f"{program}: permission denied (not root)"
    line = first_line(output.stderr) or first_line(output.stdout)
    if line:
        return f"{program}: {line[:200]}"
    return f"{program}: exit status {output.rc}"


def first_line(text: str) -> str:
    """The first line of `text` that is not blank, stripped ("" when none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def os_name(output: Output | None) -> str | None:
    """PRETTY_NAME from /etc/os-release."""
    if output is None or not output.ok:
        return None
    for line in output.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            try:
                words = shlex.split(value)
            except ValueError:
                words = [value.strip().strip("\"'")]
            return " ".join(words) or None
    return None


def kernel_and_arch(output: Output | None) -> tuple[str | None, str | None]:
    """(release, machine) from `uname -srm`: "Linux 6.1.0-50-amd64 x86_64"."""
    if output is None or not output.ok:
        return None, None
    words = first_line(output.stdout).split()
    if len(words) != 3:
        return None, None
    return words[1], words[2]


def is_root(output: Output | None) -> bool | None:
    """Whether `id -u` said 0."""
    if output is None or not output.ok:
        return None
    uid = first_line(output.stdout)
    if not uid.isdigit():
        return None
    return uid == "0"


def clock_offset(output: Output | None, *, started: float, finished: float) -> float | None:
    """Host minus controller in seconds; 0 when the host's time lies within the round trip."""
    if output is None or not output.ok:
        return None
    try:
        host = float(first_line(output.stdout))
    except ValueError:
        return None
    if host != host or host in (float("inf"), float("-inf")):
        return None
    if host < started:
        return host - started
    if host > finished:
        return host - finished
    return 0.0


def ntp_synchronized(output: Output | None) -> bool | None:
    """NTPSynchronized from `timedatectl show`; None when it could not say."""
    if output is None or not output.ok:
        return None
    for line in output.stdout.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "NTPSynchronized":
            return {"yes": True, "no": False}.get(value.strip())
    return None


def clock(
    clock_output: Output | None, ntp_output: Output | None, *, started: float, finished: float
) -> Clock | None:
    offset = clock_offset(clock_output, started=started, finished=finished)
    synchronized = ntp_synchronized(ntp_output)
    if offset is None and synchronized is None:
        return None
    return Clock(offset_s=offset, ntp_synchronized=synchronized)


def dns(
    output: Output | None,
    *,
    public_name: str | None,
    controller_addresses: tuple[str, ...] | None,
    controller_error: str | None,
) -> Dns | None:
    """What the host's resolver (`getent ahosts`) and the controller say about `public_name`."""
    if not public_name:
        return None
    from_host: tuple[str, ...] | None
    host_error: str | None = None
    if _is_address(public_name):
        from_host = (public_name.strip("[]"),)
    elif output is not None and output.ok:
        from_host = _ahosts(output.stdout)
    elif output is not None and output.rc == 2:
        from_host, host_error = (), "does not resolve"
    else:
        from_host, host_error = None, failure_reason(output, program="getent")
    return Dns(
        name=public_name,
        from_host=from_host,
        from_controller=controller_addresses,
        host_error=host_error,
        controller_error=controller_error,
    )


def _ahosts(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for line in text.splitlines():
        words = line.split()
        if words and _is_address(words[0]):
            seen.setdefault(words[0], None)
    return tuple(seen)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
