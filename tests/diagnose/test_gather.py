"""HostFacts from a whole probe run: the lab's truth, a non-root run, nothing, and garbage.

lab-healthy.json is the probe's real output on the lab VM; lab-nonroot.json is the same
commands run there as `nobody` (setpriv), read-only (its caddy_validate had HOME and the XDG
dirs under /nonexistent instead of the probe's temporary dir, and its dns asked for
nosuch.invalid).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose.facts import Listener
from ollama_fleet.diagnose.gather import host_facts
from ollama_fleet.diagnose.probe import COMMANDS, Output

DATA = Path(__file__).parent.parent / "data" / "diagnose"
LAB_CLOCK = 1796149590.1151128  # the lab's `date +%s.%N` in the capture
UNITS = (
    "ollama.service",
    "caddy.service",
    "ollama-fleet-gateway.service",
    "ollama-fleet-monitor.service",
    "ollama-fleet-firewall.service",
)


def lab(name: str = "lab-healthy") -> dict[str, Output]:
    raw = json.loads((DATA / f"{name}.json").read_text())
    return {key: Output(name=key, **value) for key, value in raw.items()}


def test_the_lab_as_it_is() -> None:
    facts = host_facts(
        lab(),
        started=LAB_CLOCK - 1,
        finished=LAB_CLOCK + 1,
        public_name="localhost",
        controller_addresses=("127.0.0.1",),
    )
    assert facts.os == "Debian GNU/Linux 12 (bookworm)"
    assert (facts.kernel, facts.arch, facts.root) == ("6.1.0-50-amd64", "x86_64", True)
    for name in UNITS:
        unit = facts.unit(name)
        assert unit is not None and unit.installed and unit.active, name
        assert unit.journal and unit.errors == (), name
    assert facts.listeners is not None
    assert Listener(address="127.0.0.1", port=11434, process="python3") in facts.listeners
    assert Listener(address="*", port=443, process="caddy") in facts.listeners
    firewall = facts.firewall
    assert firewall is not None and firewall.ours and firewall.input_drops
    assert not firewall.admits(11434)
    assert all(firewall.admits(port) for port in (22, 80, 443))
    assert facts.ollama_release == "0.12.0-simulator"
    api = facts.ollama_api
    assert api is not None and api.answered and api.url == "http://127.0.0.1:11434"
    assert api.version == "0.12.0-simulator"
    assert {"llama3.2:1b", "qwen2.5:0.5b"} <= set(api.models)
    models = facts.models_dir
    assert models is not None and models.exists and models.owner == "ollama"
    gpu = facts.gpu
    assert gpu is not None and gpu.nvidia_devices == 0 and not gpu.smi_installed
    caddy = facts.caddy
    assert caddy is not None and caddy.installed and caddy.config_valid is True
    assert caddy.rewrites_host is False  # the lab's Caddyfile has no `header_up Host`
    assert caddy.proxies_to == ("127.0.0.1:8080",)
    assert facts.clock is not None and facts.clock.offset_s == 0.0
    assert facts.clock.ntp_synchronized is None
    assert facts.gaps == {"ntp": "timedatectl: Failed to connect to bus: No such file or directory"}
    assert facts.dns is not None and facts.dns.from_host == ("::1", "127.0.0.1")
    assert facts.dns.from_controller == ("127.0.0.1",)
    assert facts.missing_tools == ("nvidia-smi",)


def test_a_host_clock_ahead_of_the_round_trip() -> None:
    facts = host_facts(lab(), started=LAB_CLOCK - 100, finished=LAB_CLOCK - 90)
    assert facts.clock is not None and facts.clock.offset_s == pytest.approx(90, abs=1e-3)
    assert facts.dns is None


def test_the_lab_seen_by_a_user_who_is_not_root() -> None:
    facts = host_facts(lab("lab-nonroot"), started=0, finished=1, public_name="nosuch.invalid")
    assert facts.root is False
    assert facts.units == {}
    assert facts.firewall is None
    assert facts.gaps["firewall"] == "nft: permission denied (not root)"
    assert facts.gaps["units"].startswith("systemctl: Failed to connect to bus")
    assert facts.listeners is not None and {x.process for x in facts.listeners} == {""}
    assert facts.caddy is not None and facts.caddy.config_valid is None
    assert "not root" in facts.gaps["caddy.config"]
    assert facts.ollama_api is not None and facts.ollama_api.answered
    assert facts.dns is not None and facts.dns.from_host == ()
    assert facts.dns.host_error == "does not resolve"


def test_journals_hidden_from_the_ssh_user() -> None:
    outputs = lab()
    denied = lab("lab-nonroot")
    for name in UNITS:
        outputs[f"journal:{name}"] = denied[f"journal:{name}"]
    facts = host_facts(outputs, started=0, finished=1)
    assert facts.gaps["journal"] == "journalctl: permission denied (not root)"
    unit = facts.unit("ollama.service")
    assert unit is not None and unit.active and unit.journal == ()


def test_missing_tools_are_named_once() -> None:
    outputs = lab()
    for name in ("ruleset", "sockets", "api_version", "api_tags", "api_ps"):
        program = {"ruleset": "nft", "sockets": "ss"}.get(name, "curl")
        outputs[name] = Output(
            name=name, rc=127, stdout="", stderr=f"sh: 1: {program}: not found\n"
        )
    facts = host_facts(outputs, started=0, finished=1)
    assert facts.missing_tools == ("ss", "nft", "curl", "nvidia-smi")  # the probe's order
    assert facts.gaps["firewall"] == "nft: not installed"
    assert facts.gaps["listeners"] == "ss: not installed"
    assert facts.firewall is None and facts.listeners is None
    assert facts.ollama_api is not None and not facts.ollama_api.answered
    assert facts.ollama_api.error == "curl: not installed"


def test_nothing_came_back() -> None:
    facts = host_facts({}, started=0, finished=1, public_name="a.example")
    assert facts.os is None and facts.units == {} and facts.firewall is None
    assert facts.ollama_api is None and facts.gpu is None and facts.caddy is None
    assert facts.clock is None and facts.missing_tools == ()
    assert {
        "os",
        "kernel",
        "root",
        "units",
        "listeners",
        "firewall",
        "ollama_api",
        "gpu",
        "caddy",
        "clock",
        "ntp",
        "dns",
    } <= set(facts.gaps)
    assert facts.dns is not None and facts.dns.from_host is None


@pytest.mark.parametrize(
    "text", ["", "garbage\n", "\x00\xff{[", '{"nftables": [{}]}', "Id=\n\nLISTEN 0 0 :: ::"]
)
@pytest.mark.parametrize("rc", [0, 1, 124])
def test_garbage_everywhere_never_raises(text: str, rc: int) -> None:
    names = [*COMMANDS, "dns"]
    outputs = {name: Output(name=name, rc=rc, stdout=text, stderr=text) for name in names}
    facts = host_facts(outputs, started=0, finished=1, public_name="a.example")
    assert facts.gaps
    assert facts.os is None and facts.ollama_release is None or rc == 0
