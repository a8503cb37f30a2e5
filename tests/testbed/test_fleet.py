"""The testbed's fleet with its simulators in processes: each reports the port it bound."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ollama_fleet.errors import TestbedError
from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec, _port_from_banner

pytestmark = pytest.mark.integration


def test_simulators_in_processes_serve_behind_caddy(tmp_path: Path) -> None:
    specs = [SiteSpec(name="a"), SiteSpec(name="b")]
    with LocalFleet(tmp_path, specs, shared_simulators=2, simulators_in_processes=True) as fleet:
        upstreams = {site.simulator_port for site in fleet.sites.values()}
        assert len(upstreams) == 2  # two processes, each on the port its banner named
        for site in fleet.sites.values():
            trust = ssl.create_default_context(cafile=str(fleet.ca_file))
            answer = httpx.get(f"{site.url}/api/version", verify=trust, timeout=10)
            assert answer.json() == {"version": "0.12.0-simulator"}
            assert answer.headers["x-ollama-simulator"] == "1"


def test_a_simulator_that_exits_before_its_banner_is_named(tmp_path: Path) -> None:
    log = tmp_path / "simulator.log"
    code = (
        "import sys; sys.stderr.write('Error: cannot listen on http://127.0.0.1:1\\n'); sys.exit(2)"
    )
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stderr)
    with pytest.raises(TestbedError) as caught:
        _port_from_banner(proc, log)
    proc.wait()
    assert str(caught.value) == (
        "simulator exited with 2: Error: cannot listen on http://127.0.0.1:1"
    )
    assert proc.stdout is not None
    proc.stdout.close()
