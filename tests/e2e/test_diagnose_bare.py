"""Diagnose on the bare lab VM, a host with nothing of ours on it: a report, never a crash.

Runs on the bare VM, first of the end-to-end tests (tests/e2e/conftest.py), before
test_site.py deploys anything. The lab's inventory expects the whole site, so the findings
say what is missing and how to get it; the facts are still read and reported, and nothing on
the VM changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ollama_fleet.lab import LabInfo, load_info, run_ssh
from ollama_fleet.lab.vault import password_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

OLLAMA_FLEET = Path(sys.executable).with_name("ollama-fleet")
# what the VM looks like, before and after: files under /etc and the units that run
SNAPSHOT = (
    "find /etc /usr/local /opt /var/lib/caddy -xdev 2>/dev/null | sort | md5sum; "
    "systemctl list-units --state=running --no-legend --plain | sort"
)


def test_a_bare_host_gives_a_report_with_the_deploy_as_fix_and_is_left_untouched(
    lab_vm: LabInfo, tmp_path: Path
) -> None:
    lab = load_info(lab_vm.state_dir) or lab_vm
    before = run_ssh(lab, SNAPSHOT).stdout
    report = tmp_path / "bare.json"
    done = subprocess.run(
        [str(OLLAMA_FLEET), "diagnose", str(lab.inventory), "--vault-password-file",
         str(password_file(lab.state_dir)), "-o", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    data = json.loads(report.read_text(encoding="utf-8"))
    (host,) = data["hosts"]
    facts = host["facts"]
    assert facts["os"].startswith("Debian GNU/Linux 12") and facts["root"] is True
    rules = {f["rule"]: f for f in host["findings"]}
    assert rules["ollama-not-installed"]["fix"] == {
        "command": f"ollama-fleet deploy {lab.inventory} --limit lab --vault-password-file "
        f"{password_file(lab.state_dir)}",
        "where": "controller",
        "note": "",
    }
    assert "caddy-down" in rules
    # the bare image has no nft: the firewall could not be read, and that is a finding
    assert facts["firewall"] is None and "nft" in facts["missing_tools"]
    assert any(f["rule"] == "blind-spot" and "nft" in f["title"] for f in host["findings"])
    # from outside, nothing answers on the lab's public URL: the checks say it, joined
    assert any(c["status"] == "fail" for c in host["checks"])
    assert run_ssh(lab, SNAPSHOT).stdout == before
