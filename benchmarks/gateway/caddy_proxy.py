"""The gateway benchmark's Go reference: Caddy's `reverse_proxy` in front of both simulators.

Plain HTTP on 127.0.0.1, both nodes as upstreams with `lb_policy least_conn`, answers
flushed as they come (`flush_interval -1`), the local Host header Ollama (and the simulator)
wants, and no admin API, no ACME, no files outside the benchmark's folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from blackbox_stack import wait_ready
from processes import BenchError, Child, start


def caddyfile(*, port: int, upstreams: Sequence[str], storage: Path) -> str:
    """`upstreams` are host:port."""
    return "\n".join(
        [
            "{",
            "\tadmin off",
            "\tauto_https off",
            f"\tstorage file_system {{\n\t\troot {storage}\n\t}}",
            "}",
            f"http://127.0.0.1:{port} {{",
            "\tbind 127.0.0.1",
            f"\treverse_proxy {' '.join(upstreams)} {{",
            "\t\tlb_policy least_conn",
            "\t\tflush_interval -1",
            "\t\theader_up Host localhost",
            # Caddy 2.6.2 can cut a fast answer short when it streams the request body;
            # src/ollama_fleet/testbed/caddy.py says why. The body here is a few hundred bytes.
            "\t\tbuffer_requests",
            "\t}",
            "}",
            "",
        ]
    )


def start_caddy(
    stack: ExitStack, workdir: Path, *, port: int, upstreams: Sequence[str]
) -> tuple[Child, str]:
    """Caddy running and answering through to a simulator; returns it and its base URL."""
    binary = shutil.which("caddy")
    if binary is None:
        raise BenchError("caddy is missing (apt-get install caddy; make setup does it)")
    home = workdir / "caddy"
    home.mkdir()
    config = home / "Caddyfile"
    config.write_text(caddyfile(port=port, upstreams=upstreams, storage=home / "data"))
    # `env` execs Caddy in its own place (same pid) with its dirs inside the benchmark's folder
    command = ["env", f"HOME={home}", f"XDG_DATA_HOME={home / 'data'}"]
    command += [f"XDG_CONFIG_HOME={home / 'config'}", binary, "run", "--adapter", "caddyfile"]
    command += ["--config", str(config)]
    child = start(stack, "caddy", command, workdir / "caddy.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, f"{base}/api/version")
    return child, base
