"""Caddy's validation, the Caddyfile's proxying, stored certificates and ACME trouble."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ollama_fleet.diagnose import parse_caddy
from ollama_fleet.diagnose.facts import Unit
from ollama_fleet.diagnose.probe import Output

DATA = Path(__file__).parent.parent / "data" / "diagnose"


def lab(name: str = "lab-healthy") -> dict[str, Output]:
    raw = json.loads((DATA / f"{name}.json").read_text())
    return {key: Output(name=key, **value) for key, value in raw.items()}


CADDY = Unit(name="caddy.service", load_state="loaded", active_state="active")

REWRITING = """\
# a comment with reverse_proxy 10.0.0.9:1 { in it
ollama.example.com {
	respond @x `{"error":"}"}` 403
	reverse_proxy @api 127.0.0.1:11434 127.0.0.1:11435 {
		to 127.0.0.1:11436
		header_up Host {upstream_hostport}
		transport http {
			dial_timeout 5s
		}
	}
	reverse_proxy /other/* "10.0.0.2:80"
}
"""

# `caddy validate` (Caddy 2.6.2, Debian 12) of a Caddyfile with a misspelt directive
INVALID_STDERR = (DATA / "caddy-validate-invalid.txt").read_text()


def test_the_labs_caddy_is_valid_and_does_not_rewrite_host() -> None:
    outputs = lab()
    facts, gaps = parse_caddy.caddy_facts(outputs, unit=CADDY)
    assert facts.installed and facts.config_valid is True and facts.validate_error is None
    assert facts.rewrites_host is False
    assert facts.proxies_to == ("127.0.0.1:8080",)
    assert facts.certificates == ()
    assert facts.acme_errors == ()  # the OCSP stapling warning is not about obtaining
    assert gaps == {}


def test_a_caddyfile_that_rewrites_host() -> None:
    proxy = parse_caddy.proxying(REWRITING)
    # the first block rewrites Host; the one-line reverse_proxy after it cannot
    assert proxy.unrewritten == ("10.0.0.2:80",) and not proxy.rewrites_host
    assert proxy.upstreams == (
        "127.0.0.1:11434",
        "127.0.0.1:11435",
        "127.0.0.1:11436",
        "10.0.0.2:80",
    )


def test_header_up_outside_a_reverse_proxy_or_removing_host_is_not_a_rewrite() -> None:
    text = "a {\n\theader_up Host x\n\treverse_proxy b:1 {\n\t\theader_up -Host\n\t}\n}\n"
    assert not parse_caddy.proxying(text).rewrites_host
    assert parse_caddy.proxying(
        "a {\n reverse_proxy b:1 {\n  header_up +host x\n }\n}"
    ).rewrites_host


def test_an_invalid_caddyfile_in_caddys_words() -> None:
    valid, error = parse_caddy.validate("", INVALID_STDERR, 1)
    assert valid is False
    assert error == (
        "adapting config using caddyfile: /tmp/cap/Caddyfile:2: "
        "unrecognized directive: reverse_proxyy"
    )
    json_only = '{"level":"error","msg":"x","error":"loading: bad cert"}\n{"level":"info"}\n'
    assert parse_caddy.validate("", json_only, 1) == (False, "loading: bad cert")
    assert parse_caddy.validate("", "last words\n", 1) == (False, "last words")
    assert parse_caddy.validate("", "", 1) == (False, "caddy validate exited with status 1")


def test_without_root_validation_is_unknown_not_invalid() -> None:
    facts, gaps = parse_caddy.caddy_facts(lab("lab-nonroot"), unit=None)
    assert facts.installed and facts.config_valid is None
    assert gaps == {"caddy.config": "caddy validate: permission denied (not root)"}


def test_caddy_not_installed() -> None:
    outputs = {
        "caddy_validate": Output(
            name="caddy_validate", rc=127, stdout="", stderr="sh: 1: caddy: not found"
        ),
        "caddyfile": Output(
            name="caddyfile", rc=1, stdout="", stderr="cat: /etc/caddy/Caddyfile: No such file"
        ),
    }
    missing = Unit(name="caddy.service", load_state="not-found", active_state="inactive")
    facts, gaps = parse_caddy.caddy_facts(outputs, unit=missing)
    assert not facts.installed and facts.config_valid is None and facts.rewrites_host is None
    assert gaps == {}


def _pem(names: list[str], not_after: dt.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test ACME R3")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=90))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificates_in_caddys_storage() -> None:
    not_after = dt.datetime(2027, 2, 1, 12, 0, tzinfo=dt.UTC)
    base = "/var/lib/caddy/.local/share/caddy/certificates/acme-v02.api.letsencrypt.org-directory"
    text = (
        f"# {base}/a.example/a.example.crt\n{_pem(['a.example', 'www.a.example'], not_after)}"
        f"# {base}/broken/broken.crt\n"
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        f"# {base}/empty/empty.crt\n"
    )
    found, unreadable = parse_caddy.certificates(text)
    assert len(found) == 1
    cert = found[0]
    assert cert.names == ("a.example", "www.a.example")
    assert cert.not_after == not_after and cert.issuer == "Test ACME R3"
    assert cert.path.endswith("a.example.crt")
    assert unreadable == (f"{base}/broken/broken.crt", f"{base}/empty/empty.crt")


def test_acme_errors_from_caddys_journal() -> None:
    journal = (DATA / "journal-caddy-acme.txt").read_text()
    assert parse_caddy.acme_errors(journal) == (
        "2026-12-01T18:00:00+0000 tls.obtain: could not get certificate from issuer: "
        "HTTP 429 urn:ietf:params:acme:error:rateLimited",
        "2026-12-01T18:00:03+0000 tls.issuance.acme.acme_client: challenge failed",
    )


@pytest.mark.parametrize(
    "text", ["", "}}}\n{{{", "`unclosed", '"unclosed', "reverse_proxy", "\x00#"]
)
def test_garbage_caddyfiles_never_raise(text: str) -> None:
    proxy = parse_caddy.proxying(text)
    assert not proxy.rewrites_host
    assert parse_caddy.certificates(text) == ((), ())
    assert parse_caddy.acme_errors(text) == ()


def test_each_reverse_proxy_is_judged_on_its_own_host_rewrite() -> None:
    text = (
        "gateway.example.com {\n\treverse_proxy 127.0.0.1:8080 {\n"
        "\t\theader_up Host localhost:8080\n\t}\n}\n"
        "ollama.example.com {\n\treverse_proxy 127.0.0.1:11434 {\n\t\tflush_interval -1\n"
        "\t}\n}\nother.example.com {\n\treverse_proxy 127.0.0.1:9000\n}\n"
    )
    proxy = parse_caddy.proxying(text)
    assert proxy.unrewritten == ("127.0.0.1:11434", "127.0.0.1:9000")
    assert not proxy.rewrites_host


def test_acme_words_leave_the_local_cas_root_install_warning_out() -> None:
    line = (
        '2026-12-01T10:00:00+0000 h caddy[1]: {"level":"warn","logger":"pki.ca.local",'
        '"msg":"failed to install root certificate","error":"failed to execute tee"}'
    )
    assert parse_caddy.acme_errors(line) == ()
