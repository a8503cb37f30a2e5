"""Mutable state of one simulator (test double) instance: models, loaded models, faults, pace."""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ollama_fleet.fsutil import atomic_write
from ollama_fleet.simulator.config import (
    Faults,
    SimModel,
    SimulatorConfig,
    model_from_name,
    normalize_name,
)
from ollama_fleet.simulator.stats import Stats

DEFAULT_KEEP_ALIVE_S = 300.0
FOREVER_S = 290 * 365 * 24 * 3600.0  # Ollama shows "forever" as a date centuries away
_GO_DURATION = re.compile(r"([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """A timestamp as Ollama writes it (RFC 3339, "Z" for UTC)."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_keep_alive(value: object) -> float:
    """Seconds to keep a model loaded, from Ollama's keep_alive (number of seconds or "5m")."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise ValueError("keep_alive must be a number or a duration string")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in ("0", "+0", "-0"):
            return 0.0
        if _GO_DURATION.fullmatch(text) is None:
            raise ValueError(f"time: invalid duration {value!r}")
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _GO_PART.findall(text))
        seconds = -seconds if text.startswith("-") else seconds
    else:
        raise ValueError("keep_alive must be a number or a duration string")
    if math.isnan(seconds):
        raise ValueError("keep_alive must be a number")
    return FOREVER_S if seconds < 0 or seconds > FOREVER_S else seconds


def manifest_path(models_dir: Path, name: str) -> Path:
    """Where Ollama keeps a model's manifest: manifests/registry.ollama.ai/library/NAME/TAG."""
    base, tag = normalize_name(name).rsplit(":", 1)
    namespace = base if "/" in base else f"library/{base}"
    return models_dir / "manifests" / "registry.ollama.ai" / namespace / tag


def stored_models(models_dir: Path | None) -> list[tuple[SimModel, datetime]]:
    """Models remembered in `models_dir` by earlier pulls, with their files' times."""
    root = None if models_dir is None else models_dir / "manifests" / "registry.ollama.ai"
    if root is None or not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            name = json.loads(path.read_text())["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours: ignore, as Ollama ignores unreadable manifests
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        found.append((model_from_name(name), stamp))
    return found


def _blob_key(digest: str) -> str:
    return "sha256:" + digest[len("sha256:") :].lower()


@dataclass(frozen=True, kw_only=True)
class Installed:
    """A model present on the simulated server, with when it arrived."""

    model: SimModel
    modified_at: datetime


class SimulatorState:
    """Models (changed by pull/delete), loaded models (for /api/ps), the current faults and
    pace (both changed through /_simulator/), and the counters of what happened."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.faults: Faults = config.faults
        self.tokens_per_second = config.tokens_per_second
        self.stats = Stats()
        started = utcnow()
        self._models: dict[str, Installed] = {
            m.name: Installed(model=m, modified_at=started) for m in config.models
        }
        for model, stamp in stored_models(config.models_dir):
            self._models[model.name] = Installed(model=model, modified_at=stamp)
        self._expires: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._blobs: set[str] = set()  # digests uploaded to /api/blobs (only their digests)

    def next_id(self) -> int:
        """A fresh number for response ids (chatcmpl-N)."""
        return next(self._ids)

    def faults_for(self, path: str) -> Faults | None:
        """The current faults if they apply to `path`, else None."""
        faults = self.faults
        return faults if faults.active and faults.applies_to(path) else None

    def installed(self) -> list[Installed]:
        """Installed models, newest first like `ollama list`."""
        return sorted(self._models.values(), key=lambda i: i.modified_at, reverse=True)

    def find(self, name: str) -> Installed | None:
        """The installed model called `name` ("x" means "x:latest"), or None."""
        return self._models.get(normalize_name(name))

    def add(self, model: SimModel) -> None:
        """Install (or refresh) a model."""
        self._models[model.name] = Installed(model=model, modified_at=utcnow())

    def save_manifest(self, model: SimModel) -> None:
        """Remember `model` in models_dir (if any); ConfigError naming the file when that
        is not writable."""
        if self.config.models_dir is not None:
            path = manifest_path(self.config.models_dir, model.name)
            manifest = json.dumps({"name": model.name, "digest": model.digest})
            atomic_write(path, manifest, what="model manifest")

    def remove(self, name: str) -> bool:
        """Delete a model; False when it was not installed."""
        full = normalize_name(name)
        self._expires.pop(full, None)
        if self.config.models_dir is not None and full in self._models:
            manifest_path(self.config.models_dir, full).unlink(missing_ok=True)
        return self._models.pop(full, None) is not None

    def has_blob(self, digest: str) -> bool:
        """True when a blob with this digest ("sha256:<hex>" or "sha256-<hex>") was uploaded."""
        return _blob_key(digest) in self._blobs

    def add_blob(self, digest: str) -> None:
        """Remember an uploaded blob by its digest (the simulator keeps no content)."""
        self._blobs.add(_blob_key(digest))

    def use(self, model: SimModel, keep_alive_s: float) -> bool:
        """Mark `model` loaded for `keep_alive_s` (0 unloads); True if it had to be loaded."""
        was_loaded = self.is_loaded(model.name)
        if keep_alive_s <= 0:
            self._expires.pop(model.name, None)
        else:
            self._expires[model.name] = utcnow() + timedelta(seconds=keep_alive_s)
        return not was_loaded

    def is_loaded(self, name: str) -> bool:
        """True while `name` is loaded and its keep-alive has not expired."""
        expires = self._expires.get(normalize_name(name))
        return expires is not None and expires > utcnow()

    def running(self) -> list[tuple[Installed, datetime]]:
        """Loaded models with their expiry, soonest-expiring last (as /api/ps lists them)."""
        now = utcnow()
        for name in [n for n, e in self._expires.items() if e <= now or n not in self._models]:
            del self._expires[name]
        pairs = [(self._models[n], e) for n, e in self._expires.items()]
        return sorted(pairs, key=lambda p: p[1], reverse=True)
