"""Caddy on the host: `caddy validate`, the Caddyfile's proxying, stored certificates, ACME trouble.

Pure and total: odd input gives None or empty fields, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .facts import CaddyFacts, Certificate, Unit
from .parse_host import failure_reason
from .parse_units import journal_lines
from .probe import Output

ERROR_CHARS = 300
ACME_KEPT = 10
# not "certificate": the local CA's "failed to install root certificate" at every start of a
# Caddy that runs as its own user is no renewal trouble
_ACME_WORDS = ("acme", "obtain", "renew", "challenge", "issuance")
_JOURNAL_LINE = re.compile(r"^(?P<time>\S+) \S+ [^:\s]+(?:\[\d+\])?: (?P<message>\{.*)$")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxying:
    """What the Caddyfile's reverse_proxy directives do."""

    upstreams: tuple[str, ...]
    rewrites_host: bool  # every reverse_proxy rewrites Host
    unrewritten: tuple[str, ...] = ()  # upstreams of a reverse_proxy without `header_up Host`


def validate(stdout: str, stderr: str, rc: int) -> tuple[bool, str | None]:
    """(valid, the error in Caddy's words) from `caddy validate`."""
    if rc == 0 and "Valid configuration" in f"{stdout}\n{stderr}":
        return True, None
    lines = [line.strip() for line in f"{stdout}\n{stderr}".splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error:"):
            return False, line.removeprefix("Error:").strip()[:ERROR_CHARS]
    for line in reversed(lines):
        record = _record(line)
        if record is not None and record.get("error"):
            return False, str(record["error"])[:ERROR_CHARS]
    stderr_lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = stderr_lines[-1] if stderr_lines else (lines[-1] if lines else "")
    return False, (last[:ERROR_CHARS] or f"caddy validate exited with status {rc}")


def _record(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _tokens(text: str) -> Iterator[str]:
    """Caddyfile tokens; "\\n" ends a line; quoted and backquoted words are one token."""
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == "\n":
            yield "\n"
            index += 1
        elif char.isspace():
            index += 1
        elif char == "#":
            while index < size and text[index] != "\n":
                index += 1
        elif char in '"`':
            end = text.find(char, index + 1)
            while end != -1 and char == '"' and text[end - 1] == "\\":
                end = text.find(char, end + 1)
            end = size if end == -1 else end
            yield text[index + 1 : end]
            index = end + 1
        else:
            start = index
            while index < size and not text[index].isspace():
                index += 1
            yield text[start:index]


def _lines(text: str) -> Iterator[list[str]]:
    line: list[str] = []
    for token in _tokens(text):
        if token == "\n":
            if line:
                yield line
            line = []
        else:
            line.append(token)
    if line:
        yield line


def proxying(caddyfile: str) -> Proxying:
    """The reverse_proxy upstreams, and those whose block has no `header_up Host`.

    Snippets brought in with `import` are not expanded: a rewrite inside one is not seen.
    """
    upstreams: list[str] = []
    unrewritten: list[str] = []
    blocks: list[str] = []  # the directive of each open block, innermost last
    current: list[str] = []  # the upstreams of the reverse_proxy block open now
    rewrites = False
    for line in _lines(caddyfile):
        directive = line[0]
        inside_proxy = bool(blocks) and blocks[-1] == "reverse_proxy"
        if directive == "}":
            if blocks and blocks.pop() == "reverse_proxy" and not rewrites:
                unrewritten.extend(current)
            continue
        arguments = [word for word in line[1:] if word != "{"]
        if directive == "reverse_proxy":
            if arguments and arguments[0].startswith(("@", "/", "*")):
                arguments = arguments[1:]  # the matcher
            upstreams.extend(arguments)
            current, rewrites = list(arguments), False
            if line[-1] != "{":
                unrewritten.extend(arguments)  # no block: nothing rewrites Host
        elif inside_proxy and directive == "to":
            upstreams.extend(arguments)
            current.extend(arguments)
        elif inside_proxy and directive == "header_up" and arguments:
            rewrites = rewrites or arguments[0].lstrip("+").lower() == "host"
        if line[-1] == "{":
            blocks.append(directive)
    missing = tuple(dict.fromkeys(unrewritten))
    return Proxying(
        upstreams=tuple(dict.fromkeys(upstreams)),
        rewrites_host=bool(upstreams) and not missing,
        unrewritten=missing,
    )


def certificates(text: str) -> tuple[tuple[Certificate, ...], tuple[str, ...]]:
    """(the certificates, the paths that could not be read) from "# PATH" lines and PEM."""
    found: list[Certificate] = []
    unreadable: list[str] = []
    for chunk in re.split(r"^# ", text, flags=re.M)[1:]:  # what precedes the first path: none
        path, _, body = chunk.partition("\n")
        match = _PEM.search(body)
        if not path.strip() or match is None:
            if path.strip():
                unreadable.append(path.strip())
            continue
        try:
            cert = x509.load_pem_x509_certificate(match.group(0).encode())
            found.append(_certificate(path.strip(), cert))
        except Exception:  # noqa: BLE001 - any bytes from the host: cryptography may refuse them
            unreadable.append(path.strip())
    return tuple(found), tuple(unreadable)


def _certificate(path: str, cert: x509.Certificate) -> Certificate:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Certificate(
        path=path,
        names=tuple(names),
        not_after=cert.not_valid_after_utc,
        issuer=str(issuer[0].value) if issuer else cert.issuer.rfc4514_string(),
    )


def acme_errors(journal: str) -> tuple[str, ...]:
    """Caddy's error and warning lines about obtaining or renewing certificates."""
    found = []
    for line in journal_lines(journal):
        match = _JOURNAL_LINE.match(line)
        record = _record(match.group("message")) if match else None
        if record is None or str(record.get("level", "")).lower() not in ("error", "warn"):
            continue
        about = f"{record.get('logger', '')} {record.get('msg', '')}".lower()
        if not any(word in about for word in _ACME_WORDS):
            continue
        text = f"{match.group('time') if match else ''} {record.get('logger', 'caddy')}: "
        text += str(record.get("msg", ""))
        if record.get("error"):
            text += f": {record['error']}"
        found.append(text.strip()[:ERROR_CHARS])
    return tuple(found[-ACME_KEPT:])


def caddy_facts(
    outputs: Mapping[str, Output], *, unit: Unit | None
) -> tuple[CaddyFacts, dict[str, str]]:
    """Caddy's facts and the gaps among them."""
    gaps: dict[str, str] = {}
    check = outputs.get("caddy_validate")
    installed = (unit is not None and unit.installed) or (check is not None and not check.missing)
    valid: bool | None = None
    error: str | None = None
    if installed and check is not None and not check.missing and not check.timed_out:
        valid, error = validate(check.stdout, check.stderr, check.rc)
        if not valid and error is not None and "permission denied" in error.lower():
            valid, error = None, None
            gaps["caddy.config"] = "caddy validate: permission denied (not root)"
    elif installed:
        gaps["caddy.config"] = failure_reason(check, program="caddy validate")
    caddyfile = outputs.get("caddyfile")
    proxy = proxying(caddyfile.stdout) if caddyfile is not None and caddyfile.ok else None
    if installed and proxy is None:
        gaps["caddy.caddyfile"] = failure_reason(caddyfile, program="cat Caddyfile")
    stored = outputs.get("caddy_certificates")
    found, unreadable = certificates(stored.stdout) if stored is not None else ((), ())
    if unreadable:
        gaps["caddy.certificates"] = f"unreadable certificate: {', '.join(unreadable[:3])}"
    journal = outputs.get("journal:caddy.service")
    return CaddyFacts(
        installed=installed,
        config_valid=valid,
        validate_error=error,
        rewrites_host=proxy.rewrites_host if proxy is not None else None,
        unrewritten=proxy.unrewritten if proxy is not None else (),
        proxies_to=proxy.upstreams if proxy is not None else (),
        certificates=found,
        acme_errors=acme_errors(journal.stdout) if journal is not None and journal.ok else (),
    ), gaps
