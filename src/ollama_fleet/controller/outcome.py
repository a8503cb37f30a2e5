"""What a deploy did per host, and the error it ends with (the CLI turns it into 1 or 4)."""

from __future__ import annotations

from dataclasses import dataclass

from ollama_fleet.errors import FleetError


class DeployFailed(FleetError):
    """The deploy ran but a host failed, or the checks after it failed.

    `unreachable`: a host could not be reached at all (the CLI exits 4 for it, as Ansible).
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True, kw_only=True)
class HostOutcome:
    name: str
    ops: int = 0
    changed: tuple[str, ...] = ()
    error: str | None = None  # the first failure on this host, already redacted
    planned: tuple[str, ...] = ()  # with --dry: operations that would change something
    unreachable: bool = False  # the failure was the connection: nothing ran there

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployResult:
    hosts: tuple[HostOutcome, ...]
    dry: bool = False

    @property
    def failed(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.failed)

    @property
    def changed(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.changed)

    @property
    def unreachable(self) -> tuple[HostOutcome, ...]:
        return tuple(h for h in self.hosts if h.unreachable)
