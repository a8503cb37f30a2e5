"""The Prometheus rules file: valid for promtool, and built only on metrics the monitor exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from monitor.fake_nvml import H200, RTX, FakeNvml
from monitor.metrics_samples import populated, query_names
from ollama_fleet.monitor.gpu import GpuCollector
from ollama_fleet.monitor.rules import GROUP, render_rules

METRIC = re.compile(r"\bollama_fleet_\w+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def rules(text: str | None = None) -> list[dict[str, Any]]:
    document = yaml.safe_load(text or render_rules())
    (group,) = document["groups"]
    assert group["name"] == GROUP == "ollama-fleet"
    return list(group["rules"])


def exported_names() -> set[str]:
    """Every series name the monitor and the GPU collector export, as a query names them."""
    registry = CollectorRegistry()
    registry.register(GpuCollector.start("auto", nvml=FakeNvml(gpus=[H200, RTX])))
    text = populated().exposition(None)[0].decode() + generate_latest(registry).decode()
    return query_names(text)


def test_every_expr_uses_only_exported_metrics() -> None:
    exported = exported_names()
    used = set()
    for rule in rules():
        for name in METRIC.findall(rule["expr"]):
            used.add(HISTOGRAM_SERIES.sub("", name))
    assert used
    assert used <= exported, used - exported


def test_each_rule_has_severity_and_annotations_that_name_what_fired() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}
        assert "{{ $labels." in rule["annotations"]["summary"] or "absent(" in rule["expr"]


def test_the_rules_cover_what_an_operator_asks_for() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert by_name["OllamaFleetTargetDown"]["expr"] == (
        'ollama_fleet_check_success{check="connectivity"} == 0'
    )
    assert set(by_name) >= {
        "OllamaFleetCheckFailing",
        "OllamaFleetCheckWarning",
        "OllamaFleetSlowFirstToken",
        "OllamaFleetCertExpiringSoon",
        "OllamaFleetCertExpiryCritical",
        "OllamaFleetRequiredModelMissing",
        "OllamaFleetPortExposed",
        "OllamaFleetMonitorAbsent",
        "OllamaFleetMonitorStale",
        "OllamaFleetGpuHot",
        "OllamaFleetGpuEccErrors",
    }


def test_parameters_reach_the_rules() -> None:
    by_name = {r["alert"]: r for r in rules(render_rules(for_="2m", cert_warn_days=30))}
    assert by_name["OllamaFleetTargetDown"]["for"] == "2m"
    soon = by_name["OllamaFleetCertExpiringSoon"]["expr"]
    assert "ollama_fleet_tls_cert_seconds_left < 30 * 86400 " in soon
    critical = by_name["OllamaFleetCertExpiryCritical"]["expr"]
    assert critical == "ollama_fleet_tls_cert_seconds_left < 3 * 86400"


def test_the_docs_table_lists_every_alert() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "monitor.md").read_text()
    documented = set(re.findall(r"^\| (OllamaFleet\w+) \|", docs, re.MULTILINE))
    assert documented == {rule["alert"] for rule in rules()}


@pytest.mark.integration
@pytest.mark.parametrize(
    "options", [{}, {"for_": "1m", "cert_warn_days": 14}], ids=["defaults", "set"]
)
def test_promtool_accepts_the_file(tmp_path: Path, options: dict[str, Any]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `apt-get install prometheus`")
    path = tmp_path / "ollama-fleet.rules.yml"
    path.write_text(render_rules(**options))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules(path.read_text()))} rules found" in done.stdout


@pytest.mark.integration
def test_promtool_refuses_a_broken_expr(tmp_path: Path) -> None:
    # proves the check above can fail: the same file with one expr broken
    broken = render_rules().replace("== 0", "== == 0", 1)
    path = tmp_path / "broken.rules.yml"
    path.write_text(broken)
    promtool = shutil.which("promtool") or "promtool"
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, timeout=60)
    assert done.returncode != 0
