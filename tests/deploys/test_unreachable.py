"""Connection failures as one line naming the address and what to check (deploys.unreachable).

The texts are pyinfra's and paramiko's own words, as the runner receives them
(pyinfra/connectors/ssh.py raise_connect_error: "KIND (EXCEPTION)").
"""

from __future__ import annotations

import pytest

from ollama_fleet.deploys.unreachable import describe_connect_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Could not connect ([Errno None] Unable to connect to port 2222 on 127.0.0.1)",
            "127.0.0.1:2222: connection refused: is sshd running there, and is ssh_port right?",
        ),
        (
            "SSH error (Error reading SSH protocol banner)",
            "127.0.0.1:2222 answered, but not with SSH: is ssh_port the port sshd listens on?",
        ),
        (
            "Could not resolve hostname ([Errno -2] Name or service not known)",
            "127.0.0.1: the name does not resolve: check ssh_hostname (or the host's name)",
        ),
        (
            "Authentication error (username=deploy, key=~/.ssh/id_ed25519) "
            "(Authentication failed.)",
            "127.0.0.1:2222: SSH authentication failed as deploy: check ssh_user and ssh_key",
        ),
        (
            "Could not connect (timed out)",
            "127.0.0.1:2222: no answer to the SSH connect in time: a firewall drops the "
            "packets, or the host is down",
        ),
        (
            "Could not connect ([Errno 113] No route to host)",
            "127.0.0.1:2222: no route to the host: check ssh_hostname and the network path",
        ),
        (
            "SSH error (No existing session)",
            "127.0.0.1:2222 accepted the connection but sent no SSH banner: is ssh_port the "
            "port sshd listens on?",
        ),
        ("Something new\nsecond line", "127.0.0.1:2222: Something new"),
    ],
)
def test_each_failure_reads_as_one_line_with_what_to_check(text: str, expected: str) -> None:
    line = describe_connect_error(text, hostname="127.0.0.1", port=2222, user="deploy")

    assert line == expected
    assert "\n" not in line and "Errno" not in line


def test_an_ipv6_address_is_bracketed() -> None:
    line = describe_connect_error("Could not connect (Connection refused)", hostname="::1", port=22)

    assert line.startswith("[::1]:22: connection refused")
