"""The testbed's Caddyfile: what every site's proxy does, checked by the real `caddy validate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ollama_fleet.testbed.caddy import Site, render_caddyfile, validate
from ollama_fleet.testbed.certs import CertificateAuthority

pytestmark = pytest.mark.integration


def test_every_proxy_buffers_the_request_and_caddy_accepts_it(tmp_path: Path) -> None:
    # Unbuffered, Caddy 2.6.2 cut about one fast answer to a POST in a thousand and ended
    # it as if it were whole (the flaky stream-error case of tests/checks/test_fleet_cases)
    cert = CertificateAuthority(tmp_path / "pki").issue("valid")
    sites = [
        Site(https_port=40001, upstream_port=40002, cert=cert),
        Site(https_port=40003, upstream_port=40004, cert=cert, api_key="k", hsts=False),
    ]
    text = render_caddyfile(sites, storage_dir=tmp_path / "caddy")
    proxies = re.findall(r"\treverse_proxy 127\.0\.0\.1:\d+ \{\n(.*?)\n\t\}", text, re.S)
    assert len(proxies) == 2
    for block in proxies:
        assert "\t\tbuffer_requests" in block.splitlines()
        assert "\t\tflush_interval -1" in block.splitlines()  # answers still stream
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    validate(path)  # Debian's Caddy 2.6.2 knows the option (2.6.4 added request_buffers)
