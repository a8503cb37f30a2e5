"""The gateway benchmark's Python reference: LiteLLM's proxy in its own venv, both simulators.

LiteLLM is not a dependency of ollama-fleet: it lives in ~/.cache/ollama-fleet/litellm-venv,
made (python -m venv, pip install litellm[proxy]) on first use. Its config lists one
deployment per node under the same model name, so its router balances between them, each as
`ollama_chat/<model>` (LiteLLM then calls the node's /api/chat and turns the NDJSON into
OpenAI's SSE). Nothing phones home: the local model cost map, telemetry off, no database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from blackbox_stack import wait_ready
from processes import BenchError, Child, start

VENV = Path.home() / ".cache" / "ollama-fleet" / "litellm-venv"
REQUIREMENT = "litellm[proxy]==1.108.7"
MASTER_KEY = "sk-bench-litellm-master"  # a throwaway key for a proxy on loopback only
START_TIMEOUT_S = 120.0  # it imports a lot: about 20 s on a 2-core machine
ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "NO_PROXY": "*",
}


class Unavailable(Exception):
    """LiteLLM cannot run here; the message says why, and the benchmark skips its column."""


def ensure_venv(venv: Path = VENV) -> Path:
    """The `litellm` executable, making the venv and installing LiteLLM when it is missing."""
    executable = venv / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"LiteLLM: making {venv} and installing {REQUIREMENT} (once)", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", REQUIREMENT],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise Unavailable(f"{' '.join(step[:3])} failed ({proc.returncode}): {last}")
    if not executable.exists():
        raise Unavailable(f"{executable} is missing after installing {REQUIREMENT}")
    return executable


def litellm_config(*, model: str, nodes: Sequence[str]) -> dict[str, Any]:
    """`nodes` are base URLs."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"ollama_chat/{model}", "api_base": node},
            }
            for node in nodes
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": MASTER_KEY},
    }


def start_litellm(
    stack: ExitStack, workdir: Path, *, port: int, model: str, nodes: Sequence[str]
) -> tuple[Child, str]:
    """LiteLLM's proxy running; returns it and its base URL. Raises Unavailable."""
    executable = ensure_venv()
    config = workdir / "litellm.yaml"
    config.write_text(json.dumps(litellm_config(model=model, nodes=nodes), indent=1))
    # `env` execs LiteLLM in its own place (same pid), with the variables that keep it local
    command = ["env", *(f"{name}={value}" for name, value in ENV.items()), str(executable)]
    command += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    child = start(stack, "litellm", command, workdir / "litellm.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(child, f"{base}/health/readiness", timeout_s=START_TIMEOUT_S)
    except BenchError as exc:
        raise Unavailable(str(exc)) from exc
    return child, base


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {MASTER_KEY}"}
