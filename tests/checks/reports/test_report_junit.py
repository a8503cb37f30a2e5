"""The JUnit report: Ant/Jenkins shape, counts, failures for fails, output for warnings."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from ollama_fleet.checks.model import CheckResult, CheckRun, FailureClass, Status, fail, ok
from ollama_fleet.checks.reports.junit import classname, render_junit

SECONDS = re.compile(r"^\d+\.\d{3}$")


def _parse(run: CheckRun) -> ET.Element:
    return ET.fromstring(render_junit(run).encode("utf-8"))


def _case(root: ET.Element, target: str, check: str) -> ET.Element:
    found = root.find(f"./testsuite[@name='{target}']/testcase[@name='{check}']")
    assert found is not None
    return found


def _result(run: CheckRun, target: str, check: str) -> CheckResult:
    return next(r for r in run.results if r.target == target and r.check == check)


def test_declaration_and_root(run: CheckRun) -> None:
    out = render_junit(run)
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    root = _parse(run)
    assert root.tag == "testsuites"
    assert root.attrib == {
        "name": "ollama-fleet checks",
        "tests": "18",
        "failures": "3",
        "errors": "0",
        "skipped": "0",
        "time": "2.842",
        "timestamp": "2025-06-01T09:30:00",
    }


def test_one_suite_per_target_with_matching_counts(run: CheckRun) -> None:
    root = _parse(run)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == list(run.targets)
    total = 0
    for suite in suites:
        cases = suite.findall("testcase")
        total += len(cases)
        assert suite.get("tests") == str(len(cases))
        assert suite.get("failures") == str(sum(1 for c in cases if c.find("failure") is not None))
        assert suite.get("errors") == "0"
        assert SECONDS.match(suite.get("time", ""))
        assert suite.get("timestamp") == "2025-06-01T09:30:00"
        # Ant schema order: properties, testcases, system-out, system-err.
        tags = [child.tag for child in suite]
        assert tags == ["properties"] + ["testcase"] * len(cases) + ["system-out", "system-err"]
        for case in cases:
            assert set(case.attrib) == {"classname", "name", "time"}
            assert case.get("classname") == "ollama-fleet/" + suite.get("name", "")
            assert SECONDS.match(case.get("time", ""))
    assert total == int(root.get("tests", "-1")) == len(run.results)
    assert len(root.findall(".//failure")) == int(root.get("failures", "-1")) == 3
    assert root.findall(".//error") == []


def test_case_times_are_seconds(run: CheckRun) -> None:
    root = _parse(run)
    assert _case(root, "gpu-eu-1", "chat").get("time") == "1.210"
    assert _case(root, "gpu-us-2", "exposure").get("time") == "1.002"


def test_failure_carries_summary_class_findings_and_hint(run: CheckRun) -> None:
    root = _parse(run)
    result = _result(run, "gpu-us-2", "models")
    failure = _case(root, "gpu-us-2", "models").find("failure")
    assert failure is not None
    assert failure.get("message") == result.summary
    assert failure.get("type") == "model_missing"
    text = failure.text or ""
    for finding in result.findings:
        assert finding.message in text
    assert f"hint: {result.hint}" in text
    assert "FAIL [model_missing]: required model qwen2.5:7b is missing" in text


def test_hostile_summary_is_escaped_and_stripped_of_controls(run: CheckRun) -> None:
    out = render_junit(run)
    assert "\x1b" not in out
    assert "<script>" not in out
    failure = _case(_parse(run), "gpu-us-2", "chat").find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "unexpected body <script>alert(1)</script> & “bröken” 模型 \ufffd[2J"
    )
    assert failure.get("type") == "bad_response"


def test_warning_passes_but_reports_its_findings(run: CheckRun) -> None:
    root = _parse(run)
    case = _case(root, "gpu-eu-1", "tls")
    assert case.find("failure") is None
    assert case.find("error") is None
    out = case.find("system-out")
    assert out is not None and out.text is not None
    assert "WARN [tls_expired]: certificate expires in 12 days (2025-06-13)" in out.text
    assert f"hint: {_result(run, 'gpu-eu-1', 'tls').hint}" in out.text


def test_ok_case_has_details_as_json(run: CheckRun) -> None:
    case = _case(_parse(run), "edge-lab", "connectivity")
    assert case.find("failure") is None
    out = case.find("system-out")
    assert out is not None and out.text is not None
    assert "warnings:" not in out.text
    details = json.loads(out.text.split("details:\n", 1)[1])
    assert details["timings"] == {
        "connect_ms": 12.4,
        "tls_ms": 30.1,
        "first_byte_ms": 80.2,
        "total_ms": 95.4,
    }


def test_all_statuses_map_to_testcases(run: CheckRun) -> None:
    root = _parse(run)
    for result in run.results:
        case = _case(root, result.target, result.check)
        assert (case.find("failure") is not None) == (result.status is Status.FAIL)


def test_empty_run_is_a_valid_document(empty_run: CheckRun) -> None:
    root = _parse(empty_run)
    assert root.get("tests") == "0"
    assert root.get("failures") == "0"
    assert root.findall("testsuite") == []


def test_classnames_have_no_dots_for_ci_viewers_to_split() -> None:
    names = ("gpu-1.example.com", "127.0.0.1:11434", "[::1]:8443")
    results = tuple(
        CheckResult(
            target=name,
            url=f"https://{name}",
            check="tls",
            findings=(fail(FailureClass.TLS_EXPIRED, "expired") if i == 0 else ok("fine"),),
            elapsed_ms=3.0,
        )
        for i, name in enumerate(names)
    )
    run = CheckRun(
        results=results, started_at="2025-06-01T10:00:00Z", duration_ms=9.0, targets=names
    )
    root = _parse(run)
    cases = {
        suite.get("name"): [case.get("classname") for case in suite.iter("testcase")]
        for suite in root.iter("testsuite")
    }
    # the suite keeps the target's name; the classname has no dot, so Jenkins and GitLab
    # show one class per host instead of packages "gpu-1" > "example" > class "com"
    assert cases == {
        "gpu-1.example.com": ["ollama-fleet/gpu-1_example_com"],
        "127.0.0.1:11434": ["ollama-fleet/127_0_0_1:11434"],
        "[::1]:8443": ["ollama-fleet/[::1]:8443"],
    }
    classnames = [case.get("classname", "") for case in root.iter("testcase")]
    assert len(classnames) == 3 and [c for c in classnames if "." in c] == []
    assert classname("gpu-1.example.com") == "ollama-fleet/gpu-1_example_com"
    assert root.find(".//testcase/failure") is not None


def test_groups_are_a_suite_property(run: CheckRun) -> None:
    root = _parse(run)
    properties = {
        suite.get("name"): {p.get("name"): p.get("value") for p in suite.iter("property")}
        for suite in root.iter("testsuite")
    }
    assert properties["gpu-eu-1"] == {"url": "https://gpu-eu-1.example.net", "groups": "gpu,eu"}
    assert properties["edge-lab"] == {"url": "https://lab.example.org"}  # in no group
