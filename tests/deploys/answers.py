"""What strict fake hosts answer: facts of real hosts per OS (facts/), and helpers to say more.

A host's answers are tried in order, the first match wins (strict_fake/strict_fake.py):
1. what the test says: file_with(), dpkg_installed(), apt_fresh()... or {command: stdout lines};
2. what a bare host of its OS answers: the files in facts/<os>/ (facts/README.md says where
   each comes from), with the models directory's parents and the missing tools;
3. "no such file", "no such unit", "not installed" for any other path or unit a fact asks about.
Anything else fails the command, and the test. A str key is the exact command (or the command
inside pyinfra's `command -v TOOL` guard); regex() and contains() make looser matchers.

Fact commands are taken from the fact classes (pyinfra's and ollama_fleet.deploys.facts): what
is tested with them is that the roles read real output right (sh -n checks that each parses).
The command lines of operations, which only a real run executes, are written out instead
(commands.py and the tests), so that a wrong command line or order fails the test.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pyinfra.facts.deb import DebPackage, DebPackages
from pyinfra.facts.files import File, FileContents, FindInFile, Sha256File
from pyinfra.facts.server import Date, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from ollama_fleet.deploys.facts import (
    Marker,
    NvidiaGpu,
    OllamaModels,
    PathModes,
    PendingReboot,
    SshdPorts,
)

from .captured import FACTS, captured_commands, fact_command, has_file, os_file, stat_lines, tools

NVIDIA_PCI = "01:00.0 0302: 10de:2330 (rev a1)"  # `lspci -n -d 10de:` on an H100 host
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"
MISSING_TOOL = "##PYINFRA_NOCMD##"  # what pyinfra's guard prints when the fact's tool is missing
DEFAULT_MODELS_DIR = "/usr/share/ollama/.ollama/models"


@dataclass(frozen=True, slots=True)
class Matcher:
    """A looser key than the exact command: a regex of the whole command, or a part of it."""

    kind: Literal["regex", "contains"]
    text: str


Answers = dict["str | Matcher", Any]  # values: stdout lines, or answer(...)


def regex(pattern: str) -> Matcher:
    """Matches a command that `pattern` matches whole (re.fullmatch)."""
    re.compile(pattern)
    return Matcher("regex", pattern)


def contains(part: str) -> Matcher:
    """Matches any command line holding `part` (pyinfra's @fake matching)."""
    return Matcher("contains", part)


def answer(
    stdout: Iterable[str] = (),
    *,
    stderr: Iterable[str] = (),
    success: bool = True,
    after: Iterable[str | Matcher] = (),
    expand: bool = False,
) -> dict[str, Any]:
    """A command's answer; `after`: commands that must have run before on the host, in order
    (else the command has no answer); `expand`: the regex's groups fill in `\\g<name>`."""
    found: dict[str, Any] = {"stdout": list(stdout), "stderr": list(stderr), "success": success}
    if after:
        found["after"] = [as_matcher(each) for each in after]
    if expand:
        found["expand"] = True
    return found


def fake_answers(answers: Mapping[str | Matcher, Any]) -> list[dict[str, Any]]:
    """The answers as the inventory's `x_fake_answers` list, in order."""
    entries = []
    for key, value in answers.items():
        found = dict(value) if isinstance(value, dict) else {"stdout": list(value)}
        entries.append({**as_matcher(key), **found})
    return entries


def as_matcher(key: str | Matcher) -> dict[str, str]:
    return {"exact": key} if isinstance(key, str) else {key.kind: key.text}


# -- a bare host of each OS (facts/<os>/*.txt) ---------------------------------------------


def bare_host(os_name: str, *, models_dir: str = DEFAULT_MODELS_DIR) -> Answers:
    """What a bare `os_name` host answers (the lab's Debian 12 captured for real)."""
    found: Answers = {}
    for tool, path in tools(os_name).items():
        found[fact_command(Which, tool)] = [path] if path else []
        if not path:  # pyinfra's guard around a fact that needs the tool
            found[contains(f"if command -v {tool} >/dev/null 2>&1; then")] = [MISSING_TOOL]
    found.update(
        {
            fact_command(Date): [now().strftime("%Y-%m-%dT%H:%M:%S%z")],
            _shape(fact_command(PendingReboot, PLACEHOLDER), path=ANY_PATH): [
                "marker",
                f"boot {os_file(os_name, 'boot-id')[0]}",
            ],
            **nvidia_gpu(None),
            **path_modes(models_dir, modes_of(os_name)),
        }
    )
    composite = {"stat", "command-v", "snapshot-bare"}  # read into the answers above and below
    for name, command in captured_commands().items():
        if name not in composite and has_file(os_name, name):
            found[command] = os_file(os_name, name)
    if has_file(os_name, "snapshot-bare"):
        found[SNAPSHOT] = os_file(os_name, "snapshot-bare")
    for path, line in stat_lines(os_name).items():
        found[fact_command(File, path)] = [line]
    return found


def modes_of(os_name: str) -> dict[str, str]:
    """{path: octal mode} of the bare host's standard paths."""
    return {path: octal(line.split()[2][6:]) for path, line in stat_lines(os_name).items()}


# -- "no such file" and the like, for whatever path or unit a bare host lacks --------------------

PLACEHOLDER = "/STRICT-FAKE-PATH"
PLACEHOLDER_TEXT = "STRICT-FAKE-TEXT"
ANY_PATH = r"/\S+"
EXPANDED = r"\g<path>"  # the path (or unit) the regex matched, in an `expand` answer


def _shape(command: str, **groups: str) -> Matcher:
    """A regex of `command` whose placeholders become groups (later ones backreferences)."""
    pattern = re.escape(command)
    for name, placeholder in (("path", PLACEHOLDER), ("text", PLACEHOLDER_TEXT)):
        escaped = re.escape(placeholder)
        if escaped in pattern:
            first = pattern.index(escaped)
            rest = pattern[first + len(escaped) :].replace(escaped, f"(?P={name})")
            pattern = pattern[:first] + f"(?P<{name}>{groups[name]})" + rest
    return regex(pattern)


def absent() -> Answers:
    """Answers of a host lacking the path, unit or package asked about (as captured)."""
    any_unit = r"[\w@.:-]+"
    find = fact_command(FindInFile, path=PLACEHOLDER, pattern=PLACEHOLDER_TEXT)
    return {
        _shape(fact_command(File, PLACEHOLDER), path=ANY_PATH): [],
        _shape(fact_command(Sha256File, PLACEHOLDER), path=ANY_PATH): [],
        _shape(fact_command(FileContents, PLACEHOLDER), path=ANY_PATH): answer(
            [f"__pyinfra_missing_{EXPANDED}"], expand=True
        ),
        _shape(find, path=ANY_PATH, text=".+"): answer(
            stderr=[f"find: '{EXPANDED}': No such file or directory"], expand=True
        ),
        _shape(fact_command(DebPackage, PLACEHOLDER), path=ANY_PATH): [],
        _shape(fact_command(Marker, PLACEHOLDER), path=ANY_PATH): [],
        _shape(fact_command(SystemdStatus, services=[PLACEHOLDER]), path=any_unit): answer(
            [f"Id={EXPANDED}", "SubState=dead"], expand=True
        ),
        _shape(fact_command(SystemdEnabled, services=[PLACEHOLDER]), path=any_unit): answer(
            [f"Id={EXPANDED}", "UnitFileState="], expand=True
        ),
        _shape(fact_command(OllamaModels, "http:/" + PLACEHOLDER), path=ANY_PATH): [
            "unreachable"  # nothing listens: curl fails, the fact's `|| echo` speaks
        ],
    }


# the one-round-trip snapshot (converge.py), whose script test_converge runs for real
SNAPSHOT = regex(
    r"(sha256sum -- |stat -c 'meta |for f in |dpkg-query -W |systemctl show -p |echo \"user "
    r"|echo \"tags ).*; true"
)


def snapshot(os_name: str, **lines: str) -> Answers:
    """The bare host's snapshot with some lines changed, by their first word ("tags": ...)."""
    bare = list(os_file(os_name, "snapshot-bare"))
    for kind, line in lines.items():
        bare = [line if each.split(" ", 1)[0] == kind else each for each in bare]
    return {SNAPSHOT: bare}


def nvidia_gpu(driver: str | None, *, devices: Iterable[str] = ()) -> Answers:
    """lspci and nvidia-smi as the NvidiaGpu fact reads them (its own sed adds the prefixes)."""
    lines = [f"pci {device}" for device in devices]
    return {fact_command(NvidiaGpu): lines + ([f"driver {driver}"] if driver else [])}


def sshd_ports(*ports: int) -> Answers:
    """`sshd -T` listening on `ports`; none: sshd -T could not be read."""
    return {fact_command(SshdPorts): [f"port {port}" for port in ports]}


def marker(path: str, line: str) -> Answers:
    """A state file of ollama-fleet whose first line is `line`."""
    return {fact_command(Marker, path): [line]}


def path_modes(path: str, modes: Mapping[str, str]) -> Answers:
    """The PathModes fact for `path`, whose existing parents have `modes` ({path: "755"})."""
    lines, current = [], path
    while current and current != "/":
        if current in modes:
            lines.append(f"{modes[current]} {current}")
        current = posixpath.dirname(current)
    return {fact_command(PathModes, path): lines}


def ollama_tags(
    *names: str, url: str = "http://127.0.0.1:11434", distro: str = "debian12"
) -> Answers:
    """Ollama's /api/tags listing `names`, for the OllamaModels fact and the snapshot."""
    listing = json.dumps({"models": [tag(name) for name in names]}, separators=(",", ":"))
    return {fact_command(OllamaModels, url): [listing], **snapshot(distro, tags=f"tags {listing}")}


def tag(name: str) -> dict[str, Any]:
    """One model as Ollama's /api/tags lists it (its documented fields; values made up)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-09-18T10:42:07.436181911Z",
        "size": 1321098329,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "1.2B",
            "quantization_level": "Q8_0",
        },
    }


# -- files, packages and apt ---------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def octal(symbolic: str) -> str:
    """ls's "rwxrwxrwt" as stat's %a, "1777"."""
    special, digits = 0, ""
    for start, bit in ((0, 4), (3, 2), (6, 1)):
        read, write, execute = symbolic[start], symbolic[start + 1], symbolic[start + 2]
        digits += str((read != "-") * 4 + (write != "-") * 2 + (execute in "xst"))
        special |= bit if execute in "sStT" else 0
    return (str(special) if special else "") + (digits.lstrip("0") or "0")


def symbolic(mode: str, kind: str = "-") -> str:
    """ "755" as "drwxr-xr-x" for kind "d"."""
    text = kind
    for digit in mode.rjust(3, "0")[-3:]:
        value = int(digit)
        text += "".join(
            char if value & bit else "-" for bit, char in ((4, "r"), (2, "w"), (1, "x"))
        )
    return text


def stat_line(
    path: str,
    *,
    kind: str = "-",
    mode: str = "644",
    user: str = "root",
    group: str = "root",
    size: int = 4096,
    mtime: int | None = None,
) -> str:
    """What pyinfra's File fact (GNU stat) prints for an existing path."""
    stamp = int(now().timestamp()) - 86400 if mtime is None else mtime
    return (
        f"user={user} group={group} mode={symbolic(mode, kind)} atime={stamp} mtime={stamp} "
        f"ctime={stamp} size={size} '{path}'"
    )


def file_with(
    path: str, content: str, *, mode: str = "644", user: str = "root", group: str = "root"
) -> Answers:
    """`path` exists with `content` (sha256sum, stat and cat of it)."""
    data = content.encode()
    return {
        fact_command(Sha256File, path): [f"{hashlib.sha256(data).hexdigest()}  {path}"],
        fact_command(File, path): [
            stat_line(path, mode=mode, user=user, group=group, size=len(data))
        ],
        fact_command(FileContents, path): content.splitlines(),
    }


def grep_finds(path: str, pattern: str, lines: Iterable[str]) -> Answers:
    """pyinfra's FindInFile (`grep -e pattern path`): the file holds `lines` that match."""
    return {fact_command(FindInFile, path=path, pattern=pattern): list(lines)}


def dir_with(path: str, *, mode: str = "755", user: str = "root", group: str = "root") -> Answers:
    """The directory `path` exists."""
    return {
        fact_command(File, path): [stat_line(path, kind="d", mode=mode, user=user, group=group)]
    }


def apt_fresh() -> Answers:
    """`apt-get update` ran a minute ago (pyinfra's cache_time then skips it)."""
    moment = int(now().timestamp()) - 60
    return {fact_command(File, APT_STAMP): [stat_line(APT_STAMP, size=0, mtime=moment)]}


def package_lines(os_name: str) -> dict[str, str]:
    """{name: its `dpkg -l` line once installed} for what the roles install (packages.txt)."""
    return {line.split()[1]: line for line in os_file(os_name, "packages")}


def dpkg_installed(os_name: str, *packages: str) -> Answers:
    """`dpkg -l` of the bare host with `packages` installed too."""
    listing = os_file(os_name, "dpkg-l")
    header = [line for line in listing if not line.startswith("ii ")]
    installed = {line.split()[1]: line for line in listing if line.startswith("ii ")}
    known = package_lines(os_name)
    for name in packages:
        if name not in known and name not in installed:
            raise KeyError(f"{name}: add its `dpkg -l` line to {FACTS / os_name / 'packages.txt'}")
        installed.setdefault(name, known.get(name, ""))
    return {fact_command(DebPackages): header + [installed[n] for n in sorted(installed)]}


def deb_file(path: str, package: str, version: str, arch: str = "all") -> Answers:
    """The package file `path` is in our cache (mode 700) and holds `package` `version`."""
    return {
        **dir_with(posixpath.dirname(path), mode="700"),
        fact_command(File, path): [stat_line(path, size=4328)],
        fact_command(DebPackage, path): [
            " new Debian package, version 2.0.",
            " size 4328 bytes: control archive=588 bytes.",
            f" Package: {package}",
            f" Version: {version}",
            f" Architecture: {arch}",
        ],
    }
