"""Value rules shared by the inventory, the checks, the deploys and the CLI: ports, model names.

Pure functions, no I/O. `port_problem` says what is wrong with a value (None when it is a
port); `parse_port` raises the ConfigError. `canonical_model_name` is the one spelling both
the checks and the deploys compare model names in. `split_names` reads repeatable,
comma-separated option values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ollama_fleet.errors import ConfigError

_REGISTRY = "registry.ollama.ai/"
_LIBRARY = "library/"


def port_problem(value: Any, *, allow_zero: bool = False) -> str | None:
    """Why `value` is not a TCP port (an int, 1-65535, or 0 with allow_zero); None if it is."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        return f"{value!r} is not a port ({low}-65535)"
    return None


def parse_port(value: Any, *, where: str, allow_zero: bool = False) -> int:
    """`value` as a port; a ConfigError naming `where` otherwise. Digit strings are accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    problem = port_problem(value, allow_zero=allow_zero)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    return int(value)


def canonical_model_name(name: str) -> str:
    """Ollama's own comparison form of a model name.

    Ollama matches names case-insensitively, drops its default registry and `library/`
    namespace, and reads a name without a tag as `:latest`: "Llama3.2" and
    "registry.ollama.ai/library/llama3.2:latest" are the same model.
    """
    name = name.strip().lower().removeprefix(_REGISTRY).removeprefix(_LIBRARY)
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def split_names(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated option values (`--roles gpu,caddy --roles models`) as names."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]
