"""The deploy tests' `@strictfake` connector: a command nobody answered fails.

pyinfra's own `@fake` connector answers every command it was not told about with success and no
output, so no wrong command line can fail a test. This one answers only from the host's
`x_fake_answers` (tests/deploys/answers.py writes them; tests/deploys/facts/README.md describes
them) and fails any other command: exit status 1 and `strict fake: no answer for: <command>` on
its standard error, which pyinfra logs and a failed operation's event shows. Each refusal is
also appended, as a JSON line, to the file named by $STRICT_FAKE_REPORT, from which the harness
(tests/deploys/conftest.py) fails the test, listing the commands. Every command must also parse
with `sh -n`, as the host's `sh -c` would parse it. With STRICT_FAKE_GO_ON=1 (by hand, to list
every command a new test needs in one run) refusals are still reported but answer success.

Test-only, installed nowhere: the `.dist-info` beside this file registers the connector
(entry point group `pyinfra.connectors`, name `strictfake`), and pyinfra finds it only in a
process whose PYTHONPATH holds this folder, as the harness gives the deploy's child process.
An inventory alone cannot reach it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, TypedDict

from pyinfra.connectors.base import BaseConnector, DataMeta
from pyinfra.connectors.util import CommandOutput, OutputLine

if TYPE_CHECKING:
    from io import IOBase

UNANSWERED = "strict fake: no answer for: "
BAD_SHELL = "strict fake: sh -n refuses: "
NO_DOWNLOAD = "strict fake: no answer for the download of: "
REPORT_ENV = "STRICT_FAKE_REPORT"
# Set to 1 by hand to list every command a deploy runs in one go: an unanswered command is
# still reported (the test still fails) but succeeds with no output, as under @fake.
GO_ON_ENV = "STRICT_FAKE_GO_ON"
# pyinfra's guard around a fact whose tool may be missing (pyinfra.api.facts._get_fact)
GUARD = re.compile(
    r"if command -v (?P<tool>\S+) >/dev/null 2>&1; then \( (?P<command>.*) \); "
    r"else echo '##PYINFRA_NOCMD##'; fi",
    re.DOTALL,
)

Answer = Mapping[str, Any]


class StrictFakeData(TypedDict, total=False):
    x_fake_answers: list[dict[str, Any]]


def guarded(command: str) -> str | None:
    """The fact's own command inside pyinfra's `command -v` guard, or None when unguarded."""
    found = GUARD.fullmatch(command)
    return found["command"] if found else None


def match(matcher: Answer, command: str) -> re.Match[str] | bool:
    """Whether one matcher takes `command`: {"exact": ...} or {"regex": ...} (the whole
    command, or the one inside pyinfra's `command -v` guard: that then answers as if the tool
    were there), or {"contains": ...} (any part of the whole command line)."""
    inner = guarded(command)
    candidates = [command] if inner is None else [command, inner]
    if "exact" in matcher:
        return matcher["exact"] in candidates
    if "regex" in matcher:
        found = (re.fullmatch(matcher["regex"], each, re.DOTALL) for each in candidates)
        return next((m for m in found if m), False)
    if "contains" in matcher:
        return str(matcher["contains"]) in command
    raise ValueError(f"strict fake: a matcher needs exact, regex or contains: {dict(matcher)}")


def ran_in_order(history: Sequence[str], matchers: Sequence[Answer]) -> bool:
    """Whether commands taken by `matchers` ran on this host before, in this order."""
    start = 0
    for matcher in matchers:
        found = [i for i in range(start, len(history)) if match(matcher, history[i])]
        if not found:
            return False
        start = found[0] + 1
    return True


def find_answer(
    answers: Sequence[Answer], command: str, history: Sequence[str]
) -> tuple[Answer, re.Match[str] | bool] | None:
    """The first answer that takes `command` and whose `after` commands ran, with its match."""
    for answer in answers:
        found = match(answer, command)
        if found and ran_in_order(history, answer.get("after", [])):
            return answer, found
    return None


def answer_lines(answer: Answer, key: str, found: re.Match[str] | bool) -> list[str]:
    """stdout or stderr of `answer`; with "expand", regex groups fill in `\\g<name>`."""
    lines = [str(line) for line in answer.get(key, [])]
    if answer.get("expand") and isinstance(found, re.Match):
        return [found.expand(line) for line in lines]
    return lines


@cache  # hosts run the same fact commands: parse each once
def shell_error(command: str) -> str | None:
    """What `sh -n` says about `command`, or None when it parses."""
    checked = subprocess.run(
        ["sh", "-n", "-c", command], capture_output=True, text=True, check=False
    )
    return None if checked.returncode == 0 else (checked.stderr.strip() or "a syntax error")


def report(host: str, problem: str, command: str) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"host": host, "problem": problem, "command": command}))
            stream.write("\n")


def _output(stdout: Sequence[str], stderr: Sequence[str]) -> CommandOutput:
    lines = [OutputLine("stdout", line) for line in stdout]
    return CommandOutput(lines + [OutputLine("stderr", line) for line in stderr])


class StrictFakeConnector(BaseConnector):
    """`@strictfake/NAME` hosts: commands answered from the host's `x_fake_answers` only."""

    handles_execution = True
    data_cls = StrictFakeData
    data_meta = {
        "x_fake_answers": DataMeta(
            "Answers, first match wins: exact, regex or contains; stdout, stderr, success; "
            "expand (regex groups into the output); after (commands that ran before, in order).",
            default=[],
        )
    }

    def __init__(self, state: Any, host: Any) -> None:
        super().__init__(state, host)
        self.history: list[str] = []  # commands run and files uploaded, for `after`

    @staticmethod
    def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        for sub_name in (name or "").split(","):
            if sub_name.strip():
                yield f"@strictfake/{sub_name.strip()}", {}, ["@strictfake"]

    def run_shell_command(
        self, command: Any, print_output: bool = False, print_input: bool = False, **arguments: Any
    ) -> tuple[bool, CommandOutput]:
        raw = command if isinstance(command, str) else command.get_raw_value()
        shown = command if isinstance(command, str) else command.get_masked_value()
        problem = shell_error(raw)
        if problem is not None:
            return self._refuse(f"{BAD_SHELL}({problem}) ", shown)
        found = find_answer(self.data.get("x_fake_answers") or [], shown, self.history)
        self.history.append(shown)
        if found is None:
            return self._refuse(UNANSWERED, shown)
        answer, matched = found
        stdout = answer_lines(answer, "stdout", matched)
        return bool(answer.get("success", True)), _output(
            stdout, answer_lines(answer, "stderr", matched)
        )

    def _refuse(self, problem: str, command: str) -> tuple[bool, CommandOutput]:
        report(self.host.name, problem, command)
        if os.environ.get(GO_ON_ENV) == "1":
            return True, _output([], [])
        return False, _output([], [problem + command])

    def put_file(
        self,
        filename_or_io: str | IOBase,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        # an upload needs no answer; it is recorded so that an answer can come `after` it
        self.history.append(f"upload {remote_filename}")
        return True

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: str | IOBase,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        report(self.host.name, NO_DOWNLOAD, remote_filename)
        return False
