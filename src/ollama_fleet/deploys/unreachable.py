"""Why a host could not be reached, in one line that names what to check.

pyinfra and paramiko word a failed SSH connection as "Could not connect ([Errno None]
Unable to connect to port 2222 on 10.0.0.5)" or "SSH error (Error reading SSH protocol
banner)". This turns such a text into the address and the inventory variable to look at.
Pure: no pyinfra import, so the controller and the tests use it alike.
"""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), message)
    for pattern, message in (
        (
            r"could not resolve|name or service not known|nodename nor servname|gaierror",
            "{host}: the name does not resolve: check ssh_hostname (or the host's name)",
        ),
        (
            # paramiko, when the TCP connect succeeds and nothing ever speaks
            r"no existing session",
            "{addr} accepted the connection but sent no SSH banner: is ssh_port the port "
            "sshd listens on?",
        ),
        (
            r"protocol banner|not an ssh|incompatible ssh|EOF error",
            "{addr} answered, but not with SSH: is ssh_port the port sshd listens on?",
        ),
        (
            r"authentication|permission denied|no authentication methods",
            "{addr}: SSH authentication failed{user}: check ssh_user and ssh_key",
        ),
        (
            r"host key|BadHostKey|not found in known_hosts",
            "{addr}: its SSH host key does not match known_hosts: if the host was reinstalled, "
            "remove the old key (ssh-keygen -R), else stop: something else answers there",
        ),
        (
            r"timed out|timeout",
            "{addr}: no answer to the SSH connect in time: a firewall drops the packets, or the "
            "host is down",
        ),
        (
            r"no route to host|network is unreachable",
            "{addr}: no route to the host: check ssh_hostname and the network path",
        ),
        (
            r"unable to connect to port|connection refused|errno 111",
            "{addr}: connection refused: is sshd running there, and is ssh_port right?",
        ),
    )
)


def describe_connect_error(text: str, *, hostname: str, port: int | str, user: str = "") -> str:
    """One line for a failed connection: the address, what happened, what to check."""
    host = hostname or "?"
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for pattern, message in _RULES:
        if pattern.search(text):
            return message.format(host=host, addr=addr, user=f" as {user}" if user else "")
    first = text.strip().splitlines()[0] if text.strip() else "cannot connect"
    return f"{addr}: {first}"
