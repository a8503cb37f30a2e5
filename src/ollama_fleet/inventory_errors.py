"""What is wrong with an inventory: problems that name a file, a line and a key, all at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from ollama_fleet.errors import ConfigError

SHOWN = 20  # problems an InventoryError's message lists before "and N more"


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Where a value was set: a file and its line, or `-e` (then without a line)."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: `FILE:LINE: KEY: text` (without the parts that are not known)."""

    origin: Origin
    key: str | None
    text: str

    def __str__(self) -> str:
        return (
            f"{self.origin}: {self.key}: {self.text}" if self.key else f"{self.origin}: {self.text}"
        )


class InventoryError(ConfigError):
    """Every problem found in an inventory (and its group_vars, host_vars, -e), one per line."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:SHOWN]]
        if len(problems) > SHOWN:
            lines.append(f"and {len(problems) - SHOWN} more")
        super().__init__("\n".join(lines))


@dataclass(slots=True)
class Problems:
    """Collects problems while a load goes on; `raise_any` ends it when there are some."""

    found: list[Problem] = field(default_factory=list)

    def add(self, origin: Origin, key: str | None, text: str) -> None:
        problem = Problem(origin, key, text)
        if problem not in self.found:
            self.found.append(problem)

    def raise_any(self) -> None:
        if self.found:
            files = list(dict.fromkeys(p.origin.path for p in self.found))
            ordered = sorted(
                self.found, key=lambda p: (files.index(p.origin.path), p.origin.line or 0)
            )
            raise InventoryError(tuple(ordered))


def fail(origin: Origin, text: str, key: str | None = None) -> InventoryError:
    """An InventoryError of one problem (a file that cannot be read, a missing -e file)."""
    return InventoryError((Problem(origin, key, text),))
