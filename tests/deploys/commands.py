"""The command lines operations run on a host, written out: a real run's answers.

A dry run only reads facts; a real run executes each operation's commands, and a strict fake
host answers only those registered here, in the order `after` says. So a wrong command line, or
an apt-get install before the `apt-get update` that reads its repository, fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .answers import Answers, Matcher, answer, contains, regex


def succeeds(*commands: str, after: Iterable[str | Matcher] = ()) -> Answers:
    """Each of `commands` succeeds with no output (`after` the ones given)."""
    return {command: answer(after=after) for command in commands}


APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -y "
    '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold"'
)
APT_UPDATE_OUTPUT = [
    "Hit:1 http://archive.ubuntu.com/ubuntu noble InRelease",
    "Reading package lists...",
]
STAGED = ".ollama-fleet-new"  # operations.checked_file's staged copy
TEMP_FILE = r"/tmp/pyinfra-[0-9a-f]{40}"  # pyinfra's temporary download name


def apt_install(*packages: str) -> str:
    """The command pyinfra's apt.packages runs to install `packages`."""
    return f"{APT} install {' '.join(packages)}"


def installs_file(
    dest: str, *, mode: str = "644", owner: str = "root:root", then: Iterable[str] = ()
) -> Answers:
    """checked_file putting a new `dest` in place: the staged upload's owner and mode, the
    swap, and `then` (its activate command), each after the one before."""
    staged = dest + STAGED
    steps = [f"chown {owner} {staged}", f"chmod {mode} {staged}", f"mv -f {staged} {dest}", *then]
    found: Answers = {}
    previous: str | Matcher = contains(f"upload {staged}")
    for step in steps:
        found[step] = answer(after=[previous])
        previous = step
    return found


def downloads(url: str, dest: str) -> Answers:
    """pyinfra's files.download with curl: to a temporary file, then moved into place."""
    fetch = f"{re.escape(f'curl -sSLf {url} -o ')}{TEMP_FILE}"
    return {
        regex(fetch): answer(),
        regex(f"mv {TEMP_FILE} {re.escape(dest)}"): answer(after=[regex(fetch)]),
    }


def installs_deb(path: str, *, after: Iterable[str | Matcher] = ()) -> Answers:
    """pyinfra's apt.deb of a package file: dpkg -i, apt-get install -f, dpkg -i again."""
    first = f"dpkg --force-confdef --force-confold -i {path} 2> /dev/null || true"
    return {
        first: answer(after=after),
        f"{APT} install -f": answer(after=[first]),
        f"dpkg --force-confdef --force-confold -i {path}": answer(after=[f"{APT} install -f"]),
    }
