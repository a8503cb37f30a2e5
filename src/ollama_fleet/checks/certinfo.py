"""Facts about a server certificate and the findings they imply (pure; no network)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from ollama_fleet.checks.model import FailureClass, Finding, TlsPolicy, fail, ok, warn

MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 256}
RENEW_HINT = (
    "renew it soon: Caddy renews ACME certificates about 30 days before expiry, so one this "
    "close means renewal is failing (see `journalctl -u caddy` for ACME errors)"
)
WEAK_SIGNATURE_HASHES = {"md5", "sha1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFacts:
    """What the leaf certificate says, as plain values."""

    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_bits: int
    signature_hash: str
    serial: str

    def as_details(self, *, now: dt.datetime) -> dict[str, Any]:
        data = asdict(self)
        data["names"] = list(self.names)
        data["not_before"] = self.not_before.isoformat()
        data["not_after"] = self.not_after.isoformat()
        data["days_left"] = round(days_left(self, now=now), 1)
        return data


def _key(cert: x509.Certificate) -> tuple[str, int]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 448
    return type(key).__name__, 0


def cert_facts(der: bytes) -> CertFacts:
    """Parse a DER leaf (as `getpeercert(binary_form=True)` returns it)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        names = ()
    key_type, key_bits = _key(cert)
    algorithm = cert.signature_hash_algorithm
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        names=names,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=algorithm.name if algorithm is not None else "none",
        serial=format(cert.serial_number, "x"),
    )


def days_left(facts: CertFacts, *, now: dt.datetime) -> float:
    return (facts.not_after - now).total_seconds() / 86400


def thresholds(facts: CertFacts, policy: TlsPolicy) -> tuple[float, float]:
    """(warn, fail) days for this certificate: the policy's, scaled down for short lifetimes.

    Short-lived certificates are renewed early in their life, not 30 days before the end:
    Caddy's `tls internal` leaves last 12 hours and are renewed with a third of their life
    left, ACME's short-lived profile lasts 6 days. A fixed 21/3 days would fail every one of
    them, so both thresholds shrink by one factor until warning starts with a quarter of the
    lifetime left: after Caddy's renewal point (a third), so a check that runs while Caddy
    renews never warns, and long before the end.
    """
    lifetime = (facts.not_after - facts.not_before).total_seconds() / 86400
    factor = min(1.0, lifetime / 4 / policy.warn_days) if policy.warn_days > 0 else 1.0
    return policy.warn_days * factor, policy.fail_days * factor


def cert_findings(facts: CertFacts, *, policy: TlsPolicy, now: dt.datetime) -> list[Finding]:
    """Validity window against the warn/fail thresholds, key strength, signature hash."""
    findings: list[Finding] = []
    left = days_left(facts, now=now)
    warn_days, fail_days = thresholds(facts, policy)
    expiry = facts.not_after.date().isoformat()
    if now < facts.not_before:
        findings.append(
            fail(
                FailureClass.TLS_EXPIRED,
                f"certificate not valid until {facts.not_before.isoformat()}",
                "the certificate's start date is in the future: check the clocks of the host "
                "and of the CA that issued it",
            )
        )
    elif left <= 0:
        findings.append(fail(FailureClass.TLS_EXPIRED, f"certificate expired on {expiry}"))
    elif left <= fail_days:
        findings.append(
            fail(
                FailureClass.TLS_EXPIRED,
                f"certificate expires in {left:.1f} days ({expiry})",
                RENEW_HINT,
            )
        )
    elif left <= warn_days:
        findings.append(
            warn(
                FailureClass.TLS_EXPIRED,
                f"certificate expires in {left:.1f} days ({expiry})",
                RENEW_HINT,
            )
        )
    else:
        more = f"{left:.0f} more days" if left >= 2 else f"{left * 24:.0f} more hours"
        findings.append(ok(f"certificate valid for {more} ({expiry})"))
    minimum = MIN_KEY_BITS.get(facts.key_type)
    if minimum is not None and facts.key_bits < minimum:
        findings.append(
            fail(FailureClass.TLS_PROTOCOL, f"{facts.key_type} key of {facts.key_bits} bits")
        )
    else:
        findings.append(ok(f"{facts.key_type} {facts.key_bits}-bit key"))
    if facts.signature_hash.lower() in WEAK_SIGNATURE_HASHES:
        findings.append(
            fail(FailureClass.TLS_PROTOCOL, f"signed with {facts.signature_hash}, a broken hash")
        )
    return findings
