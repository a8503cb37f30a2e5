"""The host's identity, clock and DNS, and the words for a failed command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose import parse_host
from ollama_fleet.diagnose.probe import Output

DATA = Path(__file__).parent.parent / "data" / "diagnose"


def lab(name: str = "lab-healthy") -> dict[str, Output]:
    raw = json.loads((DATA / f"{name}.json").read_text())
    return {key: Output(name=key, **value) for key, value in raw.items()}


def out(rc: int = 0, stdout: str = "", stderr: str = "") -> Output:
    return Output(name="x", rc=rc, stdout=stdout, stderr=stderr)


def test_the_lab_is_debian_12_on_its_kernel_as_root() -> None:
    outputs = lab()
    assert parse_host.os_name(outputs["os_release"]) == "Debian GNU/Linux 12 (bookworm)"
    assert parse_host.kernel_and_arch(outputs["uname"]) == ("6.1.0-50-amd64", "x86_64")
    assert parse_host.is_root(outputs["uid"]) is True
    assert parse_host.is_root(lab("lab-nonroot")["uid"]) is False


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (None, "nft: not reported by the probe"),
        (out(127, stderr="sh: 1: nft: not found\n"), "nft: not installed"),
        (out(124), "nft: timed out after 10 s"),
        (
            out(1, stderr="Operation not permitted (you must be root)\nnetlink: Error\n"),
            "nft: permission denied (not root)",
        ),
        (out(1, stderr="\n  something broke  \nmore\n"), "nft: something broke"),
        (out(3), "nft: exit status 3"),
    ],
)
def test_a_failed_command_is_told_in_one_line(output: Output | None, reason: str) -> None:
    assert parse_host.failure_reason(output, program="nft") == reason


def test_odd_identity_outputs_read_as_unknown() -> None:
    assert parse_host.os_name(out(stdout='NAME="x"\n')) is None
    assert parse_host.os_name(out(stdout='PRETTY_NAME="unclosed\n')) == "unclosed"
    assert parse_host.os_name(out(1)) is None
    assert parse_host.kernel_and_arch(out(stdout="Linux\n")) == (None, None)
    assert parse_host.is_root(out(stdout="root\n")) is None
    assert parse_host.is_root(None) is None


@pytest.mark.parametrize(
    ("host", "offset"),
    [("100.5", 0.0), ("100.0", 0.0), ("101.0", 0.0), ("95.25", -4.75), ("103.5", 2.5)],
)
def test_the_clock_offset_allows_for_the_round_trip(host: str, offset: float) -> None:
    got = parse_host.clock_offset(out(stdout=f"{host}\n"), started=100.0, finished=101.0)
    assert got == pytest.approx(offset)


@pytest.mark.parametrize("text", ["", "soon", "nan", "inf", "1e999"])
def test_an_unreadable_clock_has_no_offset(text: str) -> None:
    assert parse_host.clock_offset(out(stdout=text), started=1.0, finished=2.0) is None


def test_ntp_synchronized_from_timedatectl() -> None:
    assert parse_host.ntp_synchronized(out(stdout="NTP=yes\nNTPSynchronized=yes\n")) is True
    assert parse_host.ntp_synchronized(out(stdout="NTP=no\nNTPSynchronized=no\n")) is False
    assert parse_host.ntp_synchronized(lab()["ntp"]) is None  # no D-Bus in the lab
    assert parse_host.ntp_synchronized(out(stdout="NTPSynchronized=maybe\n")) is None


def test_dns_on_the_host_lists_each_address_once_in_order() -> None:
    dns = parse_host.dns(
        lab()["dns"],
        public_name="localhost",
        controller_addresses=("127.0.0.1",),
        controller_error=None,
    )
    assert dns is not None
    assert dns.from_host == ("::1", "127.0.0.1")
    assert dns.from_controller == ("127.0.0.1",)
    assert dns.host_error is None


def test_a_name_that_does_not_resolve_on_the_host() -> None:
    dns = parse_host.dns(
        lab("lab-nonroot")["dns"],
        public_name="nosuch.invalid",
        controller_addresses=None,
        controller_error="does not resolve",
    )
    assert dns is not None
    assert dns.from_host == ()
    assert dns.host_error == "does not resolve"
    assert dns.controller_error == "does not resolve"


def test_dns_without_getent_or_name() -> None:
    missing = parse_host.dns(
        out(127, stderr="sh: 1: getent: not found"),
        public_name="a.example",
        controller_addresses=None,
        controller_error=None,
    )
    assert missing is not None and missing.from_host is None
    assert missing.host_error == "getent: not installed"
    assert (
        parse_host.dns(None, public_name=None, controller_addresses=None, controller_error=None)
        is None
    )
    literal = parse_host.dns(
        None, public_name="[2001:db8::1]", controller_addresses=None, controller_error=None
    )
    assert literal is not None and literal.from_host == ("2001:db8::1",)
