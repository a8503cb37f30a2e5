"""JUnit XML report (the Ant/Jenkins shape) so CI systems can show the checks as tests.

One `<testsuite>` per target and one `<testcase>` per check. A failed check carries a
`<failure>`; a warning passes (JUnit has no warnings; `check --strict` turns them into a
non-zero exit instead) but its findings are in the testcase's `<system-out>`, next to the
probe details as JSON.

A testcase's classname is `ollama-fleet/TARGET` with every dot of the target turned into
`_` (see `classname`): Jenkins, GitLab and other viewers split a classname on its dots into
packages, so `gpu-1.example.com` would become class `com` in package `gpu-1.example`. The
testsuite's name keeps the target as it is.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ollama_fleet.checks.model import CheckResult, CheckRun, Finding, Status

from ._common import by_target, count, seconds, to_jsonable, xml_safe

__all__ = ["classname", "render_junit"]

SUITES_NAME = "ollama-fleet checks"
CLASSNAME_PREFIX = "ollama-fleet/"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _timestamp(started_at: str) -> str:
    """ISO 8601 without zone, in UTC, as the JUnit schema's `timestamp` wants it."""
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return xml_safe(started_at)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return host or url or "-"


def classname(target: str) -> str:
    """The testcase classname of a target: no dots, so CI viewers show one class per host.

    `gpu-1.example.com` -> `ollama-fleet/gpu-1_example_com`;
    `127.0.0.1:11434` -> `ollama-fleet/127_0_0_1:11434`.
    """
    return xml_safe(CLASSNAME_PREFIX + target.replace(".", "_"))


def _finding_lines(finding: Finding) -> list[str]:
    klass = f" [{finding.failure_class.value}]" if finding.failure_class is not None else ""
    lines = [f"{finding.status.value.upper()}{klass}: {finding.message}"]
    if finding.hint and finding.status is not Status.OK:
        lines.append(f"  hint: {finding.hint}")
    return lines


def _findings_text(result: CheckResult) -> str:
    lines: list[str] = []
    for finding in result.findings:
        lines.extend(_finding_lines(finding))
    return "\n".join(lines)


def _system_out(result: CheckResult) -> str:
    parts = [f"url: {result.url}"]
    if result.status is Status.WARN:
        warnings = [
            line for f in result.findings if f.status is Status.WARN for line in _finding_lines(f)
        ]
        parts.append("warnings:\n" + "\n".join(warnings))
    if result.details:
        details = json.dumps(
            to_jsonable(result.details), indent=2, sort_keys=True, ensure_ascii=False
        )
        parts.append("details:\n" + details)
    return "\n".join(parts) + "\n"


def _testcase(parent: ET.Element, result: CheckResult) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        {
            "classname": classname(result.target),
            "name": xml_safe(result.check),
            "time": seconds(result.elapsed_ms),
        },
    )
    if result.status is Status.FAIL:
        klass = result.failure_class.value if result.failure_class is not None else "fail"
        failure = ET.SubElement(
            case, "failure", {"message": xml_safe(result.summary), "type": klass}
        )
        failure.text = xml_safe(_findings_text(result))
    out = ET.SubElement(case, "system-out")
    out.text = xml_safe(_system_out(result))


def render_junit(run: CheckRun) -> str:
    """Render a run as a JUnit XML document (with XML declaration)."""
    c = count(run)
    stamp = _timestamp(run.started_at)
    root = ET.Element(
        "testsuites",
        {
            "name": SUITES_NAME,
            "tests": str(c.checks),
            "failures": str(c.fail),
            "errors": "0",
            "skipped": "0",
            "time": seconds(run.duration_ms),
            "timestamp": stamp,
        },
    )
    for index, (target, results) in enumerate(by_target(run).items()):
        failures = sum(1 for r in results if r.status is Status.FAIL)
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": xml_safe(target),
                "id": str(index),
                "package": "ollama-fleet",
                "hostname": xml_safe(_host(results[0].url) if results else target),
                "tests": str(len(results)),
                "failures": str(failures),
                "errors": "0",
                "skipped": "0",
                "time": seconds(sum(r.elapsed_ms for r in results)),
                "timestamp": stamp,
            },
        )
        properties = ET.SubElement(suite, "properties")
        if results:
            ET.SubElement(
                properties, "property", {"name": "url", "value": xml_safe(results[0].url)}
            )
        groups = run.target_groups.get(target, ())
        if groups:
            ET.SubElement(
                properties, "property", {"name": "groups", "value": xml_safe(",".join(groups))}
            )
        for result in results:
            _testcase(suite, result)
        # The Ant schema requires both elements on a testsuite, after the testcases.
        ET.SubElement(suite, "system-out")
        ET.SubElement(suite, "system-err")
    ET.indent(root, space="  ")
    return _DECLARATION + ET.tostring(root, encoding="unicode") + "\n"
