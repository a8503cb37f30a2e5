"""Configuration of the Ollama API simulator (a test double): its models, pace and faults."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ollama_fleet.errors import ConfigError

EMBEDDING_FAMILIES = frozenset({"bert", "nomic-bert"})
_EMBEDDING_SIZE_PER_PARAM = 2.0  # F16
_CHAT_SIZE_PER_PARAM = 0.6  # roughly Q4_K_M


def normalize_name(name: str) -> str:
    """Ollama's short form: "llama3.2" means "llama3.2:latest"; names compare case-insensitively."""
    name = name.strip().lower()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def name_digest(name: str) -> str:
    """The deterministic digest the simulator gives a model: sha256 hex of its name."""
    return hashlib.sha256(normalize_name(name).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class SimModel:
    """One model the simulator offers; `digest` defaults to sha256 hex of the name."""

    name: str
    size: int
    digest: str = ""
    family: str = "llama"
    parameter_size: str = "1.0B"
    quantization_level: str = "Q4_K_M"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        if not self.digest:
            object.__setattr__(self, "digest", name_digest(self.name))
        if self.size < 0:
            raise ConfigError(f"simulator model {self.name!r}: size must be >= 0")

    @property
    def is_embedding(self) -> bool:
        """True for embedding-only models (they refuse chat and generate, like Ollama)."""
        return self.family in EMBEDDING_FAMILIES

    @property
    def parameter_count(self) -> int:
        """The parameter count implied by `parameter_size` ("1.2B" -> 1_200_000_000)."""
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMBT]?)", self.parameter_size.upper())
        if match is None:
            return 0
        scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2)]
        return round(float(match.group(1)) * scale)


_KNOWN: dict[str, SimModel] = {
    m.name: m
    for m in (
        SimModel(name="llama3.2:1b", size=1_321_098_329, parameter_size="1.2B",
                 quantization_level="Q8_0"),
        SimModel(name="qwen2.5:0.5b", size=397_821_319, family="qwen2",
                 parameter_size="494.03M", quantization_level="Q4_K_M"),
        SimModel(name="nomic-embed-text:latest", size=274_302_450, family="nomic-bert",
                 parameter_size="137M", quantization_level="F16"),
        SimModel(name="llama3.1:8b", size=4_920_753_328, parameter_size="8.0B"),
        SimModel(name="mistral:7b", size=4_113_301_824, parameter_size="7.2B",
                 quantization_level="Q4_0"),
        SimModel(name="gemma2:2b", size=1_629_518_495, family="gemma2",
                 parameter_size="2.6B", quantization_level="Q4_0"),
    )
}  # fmt: skip


def model_from_name(name: str) -> SimModel:
    """A plausible SimModel for `name`: a known one, else family and size guessed from the name."""
    full = normalize_name(name)
    if full in _KNOWN:
        return _KNOWN[full]
    base, tag = full.rsplit(":", 1)
    base = base.rsplit("/", 1)[-1]
    if "embed" in base:
        return SimModel(
            name=full,
            size=274_302_450,
            family="bert",
            parameter_size="137M",
            quantization_level="F16",
        )
    family = re.sub(r"[\d.]+$", "", base) or "llama"
    match = re.search(r"(\d+(?:\.\d+)?)([bm])", tag)
    amount, unit = (float(match.group(1)), match.group(2).upper()) if match else (1.0, "B")
    params = amount * (10**9 if unit == "B" else 10**6)
    return SimModel(
        name=full,
        size=round(params * _CHAT_SIZE_PER_PARAM),
        family=family,
        parameter_size=f"{amount:.1f}{unit}" if unit == "B" else f"{amount:g}M",
    )


DEFAULT_MODELS: tuple[SimModel, ...] = tuple(
    model_from_name(n) for n in ("llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text:latest")
)
DEFAULT_PULLABLE: tuple[str, ...] = ("llama3.1:8b", "mistral:7b", "gemma2:2b")
KNOWN_NAMES: tuple[str, ...] = tuple(_KNOWN)


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Faults to inject; they apply to `paths` (all paths when empty), never to /_simulator/.

    latency_ms: wait this long before answering. status: answer this HTTP status with an
    Ollama-like {"error": ...} body. malformed: answer 200 with a body that is not JSON.
    cut_stream_after: a streaming answer stops after N chunks (or before its final chunk)
    and the connection is dropped. stream_error: a 200 stream ends with {"error": text}
    instead of its final chunk. The last two affect streaming answers only.
    """

    latency_ms: int = 0
    status: int | None = None
    malformed: bool = False
    cut_stream_after: int | None = None
    stream_error: str | None = None
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ConfigError("faults.latency_ms must be >= 0")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ConfigError("faults.status must be an HTTP error status (400-599)")
        if self.cut_stream_after is not None and self.cut_stream_after < 0:
            raise ConfigError("faults.cut_stream_after must be >= 0")
        if any(not p.startswith("/") for p in self.paths):
            raise ConfigError("faults.paths must be absolute paths such as /api/chat")

    @property
    def active(self) -> bool:
        """True when any fault is set."""
        return bool(
            self.latency_ms
            or self.status is not None
            or self.malformed
            or self.cut_stream_after is not None
            or self.stream_error is not None
        )

    def applies_to(self, path: str) -> bool:
        """True when these faults cover `path` (the control endpoint is always exempt)."""
        if path.startswith("/_simulator/"):
            return False
        return not self.paths or path in self.paths


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Everything a simulator instance needs; tokens_per_second 0 means no pacing delay."""

    models: tuple[SimModel, ...] = DEFAULT_MODELS
    tokens_per_second: float = 200.0
    loopback_only_hosts: bool = True
    faults: Faults = field(default_factory=Faults)
    pullable: tuple[str, ...] = DEFAULT_PULLABLE
    # where pulled models are remembered across restarts (OLLAMA_MODELS); None: memory only
    models_dir: Path | None = None
    # False plays a host whose Ollama runs models on the CPU: /api/ps says size_vram 0
    gpu: bool = True

    def __post_init__(self) -> None:
        if self.tokens_per_second < 0:
            raise ConfigError("simulator tokens_per_second must be >= 0")
        names = [m.name for m in self.models]
        if len(names) != len(set(names)):
            raise ConfigError("simulator models must have distinct names")

    def model_named(self, name: str) -> SimModel | None:
        """The configured model called `name` ("x" means "x:latest"), or None."""
        full = normalize_name(name)
        return next((m for m in self.models if m.name == full), None)

    def can_pull(self, name: str) -> bool:
        """True when /api/pull may "download" `name`: it is pullable or a configured model."""
        full = normalize_name(name)
        known = {normalize_name(n) for n in self.pullable} | {m.name for m in self.models}
        return full in known
