"""Run the real Caddy binary as a plain process in front of local upstreams, on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ollama_fleet.errors import TestbedError, ToolMissingError

# the deploy's own: the testbed's Caddy refuses the same write endpoints with the same Host
from ollama_fleet.render import OLLAMA_ADMIN_PATHS, OLLAMA_HOST_HEADER
from ollama_fleet.testbed.certs import CertFiles

START_TIMEOUT_S = 20.0
WRITE_REFUSAL = '{"error":"forbidden: this endpoint changes the server (testbed Caddy)"}'


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """One TLS site: https://localhost:https_port proxying to 127.0.0.1:upstream_port.

    `http_port`, when set, serves a 308 redirect to the HTTPS site; `hsts` adds the header;
    `api_key`, when set, makes Caddy answer 401 to requests without `Bearer <api_key>`;
    `block_write_endpoints` answers Ollama's write endpoints 403 with a JSON error, as the
    deploy's Caddy does (off: they pass to the upstream, an exposed host).
    """

    https_port: int
    upstream_port: int
    cert: CertFiles
    http_port: int | None = None
    hsts: bool = True
    host_name: str = "localhost"
    api_key: str | None = field(default=None, repr=False)
    block_write_endpoints: bool = True


def caddy_binary() -> str:
    path = shutil.which("caddy")
    if path is None:
        raise ToolMissingError(
            "caddy is not installed: `apt-get install caddy` (make test does it)"
        )
    return path


def render_caddyfile(sites: Iterable[Site], *, storage_dir: Path) -> str:
    """A Caddyfile for the testbed: loopback only, no admin API, no ACME, explicit redirects."""
    lines = [
        "{",
        "\tadmin off",
        "\tauto_https disable_redirects",
        "\tskip_install_trust",
        f"\tstorage file_system {{\n\t\troot {storage_dir}\n\t}}",
        "}",
    ]
    for site in sites:
        lines += [
            f"https://{site.host_name}:{site.https_port} {{",
            "\tbind 127.0.0.1",
            f"\ttls {site.cert.cert} {site.cert.key}",
        ]
        if site.hsts:
            lines.append('\theader Strict-Transport-Security "max-age=31536000"')
        if site.api_key is not None:
            lines += [
                f'\t@anonymous not header Authorization "Bearer {site.api_key}"',
                "\trespond @anonymous 401",
            ]
        if site.block_write_endpoints:
            paths = " ".join(f"{path}{tail}" for path in OLLAMA_ADMIN_PATHS for tail in ("", "/*"))
            lines += [
                f"\t@write path {paths}",
                "\theader @write Content-Type application/json",
                f"\trespond @write `{WRITE_REFUSAL}` 403",
            ]
        lines += [
            f"\treverse_proxy 127.0.0.1:{site.upstream_port} {{",
            # Ollama bound to loopback answers 403 to any non-local Host header.
            f"\t\theader_up Host {OLLAMA_HOST_HEADER}",
            "\t\tflush_interval -1",
            # Read the client's whole body before asking the upstream (Caddy 2.6.2's name for
            # it; 2.6.4 added request_buffers). Unbuffered, Go's Transport reads the
            # client's body once more after sending it, to see EOF; a fast upstream can
            # answer first, Go's server then closes that body as the answer starts, the
            # late read fails and the Transport closes the upstream connection mid-answer.
            # Caddy 2.6.2 logs "aborting with incomplete response" and ends the answer as
            # if it were whole: a stream without its last lines, or headers and no body.
            "\t\tbuffer_requests",
            "\t}",
            "}",
        ]
        if site.http_port is not None:
            lines += [
                f"http://{site.host_name}:{site.http_port} {{",
                "\tbind 127.0.0.1",
                f"\tredir https://{site.host_name}:{site.https_port}{{uri}} 308",
                "}",
            ]
    return "\n".join(lines) + "\n"


def validate(caddyfile: Path) -> None:
    """Run `caddy validate`; raise TestbedError with Caddy's own message on failure."""
    proc = subprocess.run(
        [caddy_binary(), "validate", "--adapter", "caddyfile", "--config", str(caddyfile)],
        capture_output=True,
        text=True,
        env=_caddy_env(caddyfile.parent),
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TestbedError(f"caddy validate rejected {caddyfile}: {last}")


class CaddyProcess:
    """`caddy run` on a Caddyfile until closed; waits until every given port accepts."""

    def __init__(self, caddyfile: Path, *, ports: Iterable[int]) -> None:
        self.caddyfile = caddyfile
        self.ports = tuple(ports)
        self.log_file = caddyfile.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CaddyProcess:
        validate(self.caddyfile)
        with self.log_file.open("wb") as log:
            self._proc = subprocess.Popen(
                [caddy_binary(), "run", "--adapter", "caddyfile", "--config", str(self.caddyfile)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_caddy_env(self.caddyfile.parent),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = list(self.ports)
        while pending:
            if self._proc.poll() is not None:
                raise TestbedError(
                    f"caddy exited with {self._proc.returncode}; see {self.log_file}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TestbedError(f"caddy did not listen on {pending}; see {self.log_file}")
            if _accepts(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> CaddyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _caddy_env(workdir: Path) -> dict[str, str]:
    # Keep Caddy's autosave, data and config dirs inside the testbed's folder.
    env = dict(os.environ)
    env.update(
        HOME=str(workdir),
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
    )
    return env
