"""cert_facts and cert_findings on real certificates made by the testbed CA (and by hand)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ollama_fleet.checks.certinfo import CertFacts, cert_facts, cert_findings
from ollama_fleet.checks.model import FailureClass, Finding, Status, TlsPolicy
from ollama_fleet.testbed.certs import CertificateAuthority

POLICY = TlsPolicy(warn_days=21, fail_days=3)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


def der_of(pem_file: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def facts_for(ca: CertificateAuthority, label: str, **issue: object) -> CertFacts:
    return cert_facts(der_of(ca.issue(label, **issue).cert))


def findings_for(facts: CertFacts) -> list[Finding]:
    return cert_findings(facts, policy=POLICY, now=dt.datetime.now(dt.UTC))


def worst(findings: list[Finding]) -> Finding:
    return max(findings, key=lambda f: f.status.rank)


def self_signed(
    key: rsa.RSAPrivateKey, *, days: int = 90, algorithm: hashes.HashAlgorithm | None = None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy.example.net")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("legacy.example.net")]), critical=False
        )
        .sign(key, algorithm or hashes.SHA256())
    )


@pytest.fixture(scope="module")
def rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- facts ---------------------------------------------------------------------------------


def test_facts_of_a_testbed_certificate(ca: CertificateAuthority) -> None:
    facts = facts_for(ca, "named", names=("ollama.example.net", "localhost", "127.0.0.1", "::1"))
    assert set(facts.names) == {"ollama.example.net", "localhost", "127.0.0.1", "::1"}
    assert "CN=ollama.example.net" in facts.subject
    assert "ollama-fleet testbed CA" in facts.issuer
    assert facts.key_type == "EC"
    assert facts.key_bits == 256
    assert facts.signature_hash == "sha256"
    assert facts.not_before < dt.datetime.now(dt.UTC) < facts.not_after
    assert facts.not_after.tzinfo is not None
    int(facts.serial, 16)


def test_details_are_json_ready(ca: CertificateAuthority) -> None:
    facts = facts_for(ca, "details", not_after_days=30)
    details = facts.as_details(now=dt.datetime.now(dt.UTC))
    assert details["names"] == ["localhost", "127.0.0.1"]
    assert 29 < details["days_left"] <= 30
    assert dt.datetime.fromisoformat(details["not_after"]) == facts.not_after


# --- validity window -----------------------------------------------------------------------


def test_valid_certificate_is_ok(ca: CertificateAuthority) -> None:
    findings = findings_for(facts_for(ca, "valid", not_after_days=90))
    assert [f.status for f in findings] == [Status.OK, Status.OK]
    assert "valid for" in findings[0].message
    assert "EC 256-bit key" in findings[1].message


def test_ten_days_left_warns(ca: CertificateAuthority) -> None:
    finding = worst(findings_for(facts_for(ca, "ten-days", not_after_days=10)))
    assert finding.status is Status.WARN
    assert finding.failure_class is FailureClass.TLS_EXPIRED
    assert "expires in 10.0 days" in finding.message


def test_two_days_left_fails(ca: CertificateAuthority) -> None:
    finding = worst(findings_for(facts_for(ca, "two-days", not_after_days=2)))
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.TLS_EXPIRED
    assert "expires in 2.0 days" in finding.message


def test_thresholds_follow_the_policy(ca: CertificateAuthority) -> None:
    facts = facts_for(ca, "policy", not_after_days=10)
    now = dt.datetime.now(dt.UTC)
    lenient = cert_findings(facts, policy=TlsPolicy(warn_days=5, fail_days=1), now=now)
    strict = cert_findings(facts, policy=TlsPolicy(warn_days=60, fail_days=30), now=now)
    assert worst(lenient).status is Status.OK
    assert worst(strict).status is Status.FAIL


def test_expired_certificate_fails(ca: CertificateAuthority) -> None:
    facts = facts_for(ca, "expired", not_before_days=-90, not_after_days=-1)
    finding = worst(findings_for(facts))
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.TLS_EXPIRED
    assert f"expired on {facts.not_after.date().isoformat()}" in finding.message


def test_not_yet_valid_certificate_fails(ca: CertificateAuthority) -> None:
    facts = facts_for(ca, "future", not_before_days=2, not_after_days=90)
    finding = worst(findings_for(facts))
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.TLS_EXPIRED
    assert "not valid until" in finding.message
    assert finding.hint is not None
    assert "clock" in finding.hint


# --- key and signature ---------------------------------------------------------------------


def test_rsa_2048_is_fine(rsa_2048: rsa.RSAPrivateKey) -> None:
    der = self_signed(rsa_2048).public_bytes(serialization.Encoding.DER)
    facts = cert_facts(der)
    assert (facts.key_type, facts.key_bits) == ("RSA", 2048)
    assert facts.names == ("legacy.example.net",)
    assert worst(findings_for(facts)).status is Status.OK


def test_rsa_1024_key_fails() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    facts = cert_facts(self_signed(key).public_bytes(serialization.Encoding.DER))
    assert (facts.key_type, facts.key_bits) == ("RSA", 1024)
    weak = [f for f in findings_for(facts) if f.status is Status.FAIL]
    assert len(weak) == 1
    assert weak[0].failure_class is FailureClass.TLS_PROTOCOL
    assert "1024" in weak[0].message


# sha256WithRSAEncryption and sha1WithRSAEncryption: OIDs of the same length, last byte differs.
SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")


def test_sha1_signature_fails(rsa_2048: rsa.RSAPrivateKey) -> None:
    # cryptography (42+) refuses to sign with SHA-1 ("not supported for signatures"), so the
    # certificate is signed with SHA-256 and its two signature-algorithm OIDs are rewritten to
    # sha1WithRSAEncryption. The signature no longer verifies, which cert_facts does not check:
    # it only reads what the certificate claims, as it does for a server's leaf.
    try:
        self_signed(rsa_2048, algorithm=hashes.SHA1())
    except Exception:  # expected with current cryptography
        der = self_signed(rsa_2048).public_bytes(serialization.Encoding.DER)
        assert der.count(SHA256_WITH_RSA) == 2
        der = der.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    else:
        der = self_signed(rsa_2048, algorithm=hashes.SHA1()).public_bytes(
            serialization.Encoding.DER
        )
    facts = cert_facts(der)
    assert facts.signature_hash == "sha1"
    weak = [f for f in findings_for(facts) if f.status is Status.FAIL]
    assert len(weak) == 1
    assert weak[0].failure_class is FailureClass.TLS_PROTOCOL
    assert "sha1" in weak[0].message


def test_certificate_without_san_has_no_names(rsa_2048: rsa.RSAPrivateKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.net")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_2048.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .sign(rsa_2048, hashes.SHA256())
    )
    facts = cert_facts(cert.public_bytes(serialization.Encoding.DER))
    assert facts.names == ()
    assert facts.serial == "1"
