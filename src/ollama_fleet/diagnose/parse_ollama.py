"""Ollama on the host: its release on disk, its API asked on loopback, its models directory.

Pure and total: odd input gives None or empty fields, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .facts import LoadedModel, ModelsDir, OllamaApi, Unit
from .parse_host import failure_reason, first_line
from .probe import Output

DEFAULT_PORT = "11434"
_VERSION = re.compile(r"v?\d+\.\d+[\w.+-]*")


def release(output: Output | None) -> str | None:
    """The version in /opt/ollama/RELEASE (the first word of its first line)."""
    if output is None or output.timed_out:
        return None
    # without RELEASE the first line is readlink's path of the binary, not a version
    words = output.stdout.split("\n", 1)[0].split()
    if not words or not _VERSION.fullmatch(words[0]):
        return None
    return words[0]


def api_url(unit: Unit | None) -> str:
    """Where the probe asked Ollama: its unit's OLLAMA_HOST, read as the probe's prologue does."""
    host = unit.environment.get("OLLAMA_HOST", "") if unit is not None else ""
    if not host or host.startswith(":"):
        host = "127.0.0.1" + (host or f":{DEFAULT_PORT}")
    if not host.startswith(("http://", "https://")):
        host = f"http://{host}"
    host = host.replace("//0.0.0.0", "//127.0.0.1", 1).replace("//[::]", "//[::1]", 1)
    if not re.search(r":[0-9]", host.partition("//")[2]):
        host = f"{host}:{DEFAULT_PORT}"
    return host


def api(
    *,
    url: str,
    version: Output | None,
    tags: Output | None,
    ps: Output | None,
) -> tuple[OllamaApi, dict[str, str]]:
    """What /api/version, /api/tags and /api/ps said, and the gaps among them."""
    gaps: dict[str, str] = {}
    answer = _json(version)
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), str):
        return OllamaApi(url=url, answered=False, error=_error(version)), gaps
    models: tuple[str, ...] = ()
    tags_answer = _json(tags)
    if isinstance(tags_answer, dict) and isinstance(tags_answer.get("models"), list):
        models = tuple(_names(tags_answer["models"]))
    else:
        gaps["ollama_api.tags"] = _error(tags)
    loaded: tuple[LoadedModel, ...] = ()
    ps_answer = _json(ps)
    if isinstance(ps_answer, dict) and isinstance(ps_answer.get("models"), list):
        loaded = tuple(_loaded(ps_answer["models"]))
    else:
        gaps["ollama_api.ps"] = _error(ps)
    return OllamaApi(
        url=url, answered=True, version=answer["version"], models=models, loaded=loaded
    ), gaps


def _json(output: Output | None) -> Any:
    if output is None or not output.ok:
        return None
    try:
        return json.loads(output.stdout)
    except ValueError:
        return None


def _error(output: Output | None) -> str:
    if output is not None and output.ok:
        return f"not Ollama's API: {first_line(output.stdout)[:120] or 'an empty answer'}"
    if output is not None and output.stderr.strip() and not output.missing:
        return first_line(output.stderr)[:200]  # "curl: (7) Failed to connect to ..."
    return failure_reason(output, program="curl")


def _names(models: list[Any]) -> list[str]:
    return [str(m["name"]) for m in models if isinstance(m, dict) and m.get("name")]


def _loaded(models: list[Any]) -> list[LoadedModel]:
    found = []
    for model in models:
        if not isinstance(model, dict) or not model.get("name"):
            continue
        size, vram = model.get("size"), model.get("size_vram")
        found.append(
            LoadedModel(
                name=str(model["name"]),
                size=size if isinstance(size, int) else 0,
                size_vram=vram if isinstance(vram, int) else 0,
            )
        )
    return found


def models_dir(
    outputs: Mapping[str, Output], *, default_path: str
) -> tuple[ModelsDir | None, str | None]:
    """The models directory: owner, mode, space and inodes; (None, why) when stat could not say."""
    stat = outputs.get("models_dir")
    if stat is None or stat.missing or stat.timed_out:
        return None, failure_reason(stat, program="stat")
    lines = stat.stdout.splitlines()
    path = lines[0].strip() if lines and lines[0].strip() else default_path
    if not stat.ok:
        if "no such file" not in stat.stderr.lower():
            return None, failure_reason(stat, program="stat")
        return ModelsDir(path=path, exists=False), None
    words = lines[1].split() if len(lines) > 1 else []
    owner, group, mode = words if len(words) == 3 else (None, None, None)
    total, free, mount = _df(outputs.get("models_df"))
    inodes, free_inodes, _ = _df(outputs.get("models_dfi"))
    return ModelsDir(
        path=path,
        exists=True,
        owner=owner,
        group=group,
        mode=mode,
        total_bytes=total,
        free_bytes=free,
        total_inodes=inodes,
        free_inodes=free_inodes,
        mount=mount,
    ), None


def _df(output: Output | None) -> tuple[int | None, int | None, str | None]:
    """(total, available, mount) from `df -P` (bytes with -B1, inodes with -i)."""
    if output is None or not output.ok:
        return None, None, None
    lines = [line for line in output.stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        return None, None, None
    words = lines[1].split()
    if len(words) < 6:
        return None, None, None
    return _count(words[1]), _count(words[3]), " ".join(words[5:])


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() else None
