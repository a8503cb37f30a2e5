"""Keep the documentation in step with the code: every name users see must be documented.

Pure and fast: reads README.md, docs/*.md and the sources; starts no servers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.checks.model import CHECK_NAMES, FailureClass
from ollama_fleet.checks.reports import load_schema
from ollama_fleet.cli import main
from ollama_fleet.gateway.metrics import GatewayMetrics, Services
from ollama_fleet.gateway.nodes import NodeState

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ollama_fleet"
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CHECKS_DOC = DOCS / "checks.md"
INVENTORY_DOC = DOCS / "inventory.md"
TARGETS_SOURCE = PACKAGE / "checks" / "targets.py"


def read_doc(path: Path) -> str:
    """The text of a documentation file; a clear failure if it does not exist."""
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} does not exist")
    return path.read_text(encoding="utf-8")


def all_docs_text() -> str:
    """README.md and every docs/*.md, concatenated."""
    paths = [README, *sorted(DOCS.glob("*.md"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths if p.is_file())


def in_backticks(name: str, text: str) -> bool:
    return f"`{name}`" in text


def missing(names: Iterable[str], text: str, *, found: Any = in_backticks) -> list[str]:
    """The names `found` does not find in `text`, sorted and without duplicates."""
    return sorted({n for n in names if not found(n, text)})


def assert_documented(names: Iterable[str], text: str, what: str, where: str, **kw: Any) -> None:
    absent = missing(names, text, **kw)
    assert not absent, f"{len(absent)} {what} not documented in {where}: {', '.join(absent)}"


# --- CLI commands -------------------------------------------------------------------------


def command_paths(group: click.Group, prefix: str = "") -> Iterator[str]:
    """ "check", "simulator", ... and "group sub" for nested groups; hidden commands skipped."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if command.hidden:
            continue
        path = f"{prefix}{name}"
        yield path
        if isinstance(command, click.Group):
            yield from command_paths(command, prefix=f"{path} ")


def mentions_command(path: str, text: str) -> bool:
    words = r"\s+".join(re.escape(w) for w in path.split())
    return re.search(rf"ollama-fleet\s+{words}(?![\w-])", text) is not None


def test_command_walk_finds_the_known_commands() -> None:
    assert {"check", "simulator", "demo"} <= set(command_paths(main))


def test_every_cli_command_is_documented() -> None:
    assert_documented(
        command_paths(main),
        all_docs_text(),
        "command(s) (as `ollama-fleet NAME`)",
        "README.md or docs/*.md",
        found=mentions_command,
    )


# --- checks and failure classes -----------------------------------------------------------


def test_every_check_is_documented() -> None:
    assert_documented(CHECK_NAMES, read_doc(CHECKS_DOC), "check name(s)", "docs/checks.md")


def test_every_failure_class_is_documented() -> None:
    assert_documented(
        (c.value for c in FailureClass),
        read_doc(CHECKS_DOC),
        "failure class(es)",
        "docs/checks.md",
    )


# --- inventory variables ------------------------------------------------------------------


def inventory_variables() -> set[str]:
    """Host variables the checks read: first arguments of `typed(...)` in targets.py."""
    tree = ast.parse(TARGETS_SOURCE.read_text(encoding="utf-8"), filename=str(TARGETS_SOURCE))
    names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "typed"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }
    return names | {"public_url"}


def test_inventory_variable_parsing_still_works() -> None:
    # if targets.py stops using typed(), this test (not silence) says the walk needs updating
    assert {"tls_ca_file", "required_models", "closed_ports"} <= inventory_variables()


def test_every_inventory_variable_is_documented() -> None:
    assert_documented(
        inventory_variables(),
        read_doc(INVENTORY_DOC),
        "inventory variable(s)",
        "docs/inventory.md",
    )


# --- JSON report schema -------------------------------------------------------------------


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s ("#/$defs/result") to the definition."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"unexpected non-local $ref {ref!r}"
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def key_documented(name: str, text: str) -> bool:
    """`name` in backticks, or "name" as a key in a JSON example."""
    return f"`{name}`" in text or f'"{name}"' in text


def test_every_report_property_is_documented() -> None:
    schema = load_schema()
    assert_documented(
        schema["properties"],
        read_doc(CHECKS_DOC),
        "JSON report propert(ies)",
        "docs/checks.md",
        found=key_documented,
    )


def test_every_result_property_is_documented() -> None:
    schema = load_schema()
    result = resolve(schema, schema["properties"]["results"]["items"])
    assert result["properties"], "the result item of schema.json has no properties"
    assert_documented(
        result["properties"],
        read_doc(CHECKS_DOC),
        "JSON result propert(ies)",
        "docs/checks.md",
        found=key_documented,
    )


# --- module docstrings --------------------------------------------------------------------


def docstring_problem(path: Path) -> str | None:
    """Why the module docstring of `path` is unacceptable, or None when it is fine."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    doc = ast.get_docstring(tree, clean=False)
    if doc is None or not doc.strip():
        return "no module docstring"
    lines = doc.split("\n")
    if not lines[0].strip():
        return "the docstring does not start on its first line"
    if len(lines) > 1 and lines[1].strip():
        return "the summary spans more than one line (add a blank line after the first)"
    return None


def test_every_module_has_a_one_line_summary_docstring() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no modules found under {PACKAGE}"
    problems = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in modules
        if (problem := docstring_problem(path)) is not None
    ]
    assert not problems, "modules with a bad docstring:\n" + "\n".join(problems)


# --- README -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_names_the_make_targets(command: str) -> None:
    assert command in read_doc(README), f"README.md does not mention `{command}`"


# --- gateway metrics ----------------------------------------------------------------------


GATEWAY_DOC = DOCS / "gateway.md"


def documented_gateway_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """{metric: (type, labels)} of the table in docs/gateway.md's Metrics section."""
    section = read_doc(GATEWAY_DOC).split("\n## Metrics\n", 1)[-1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(gateway_\w+)` \| (\w+) \|([^|]*)\|", section, flags=re.MULTILINE)
    assert rows, "no metric table in the Metrics section of docs/gateway.md"
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def exported_gateway_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """{metric: (type, labels)} of a real /metrics body with a sample in every family."""
    node = NodeState(
        name="gpu-1",
        url="http://127.0.0.1:11434",
        healthy=True,
        last_error=None,
        version="0.6.0",
        breaker="closed",
        draining=False,
        in_flight=1,
        queued=0,
        max_parallel=4,
        queue=32,
        models=("llama3.2:1b",),
        loaded=(),
    )
    services = Services(redis_up=True, redis_errors=0, database_up=True, database_writes=2)
    metrics = GatewayMetrics(nodes=lambda: [node], services=lambda: services)
    metrics.observe_request(
        key="alice",
        model="llama3.2:1b",
        node="gpu-1",
        status=200,
        ttfb_s=0.1,
        tokens_in=3,
        tokens_out=5,
        added_latency_s=0.001,
    )
    metrics.count_rate_limited(key="alice", which="requests")
    exported: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = frozenset(k for sample in family.samples for k in sample.labels) - {"le"}
        exported[name] = (family.type, labels)
    return exported


def test_the_gateway_metric_table_is_what_metrics_exports() -> None:
    exported = exported_gateway_metrics()
    assert "gateway_requests_total" in exported and "gateway_in_flight" in exported
    assert documented_gateway_metrics() == exported
