"""systemd units from `systemctl show`, their journals, and the lines that read as errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose import parse_units

DATA = Path(__file__).parent.parent / "data" / "diagnose"
LAB = json.loads((DATA / "lab-healthy.json").read_text())

# `systemctl show` of a unit that does not exist, captured on the lab VM (systemd 252)
NOT_FOUND = """\
Result=success
NRestarts=0
ExecMainCode=0
ExecMainStatus=0
Environment=
Id=nosuch.service
LoadState=not-found
ActiveState=inactive
SubState=dead
FragmentPath=
DropInPaths=
StateChangeTimestamp=
ActiveEnterTimestamp=
"""

# the shape systemd gives a crash-looping unit (ollama.service failing on a bad variable)
FAILED = """\
Result=exit-code
NRestarts=5
ExecMainCode=1
ExecMainStatus=1
Environment="OLLAMA_ORIGINS=a b" OLLAMA_HOST=0.0.0.0:11434 OLLAMA_HOST=127.0.0.1:11500
Id=ollama.service
LoadState=loaded
ActiveState=failed
SubState=failed
FragmentPath=/etc/systemd/system/ollama.service
DropInPaths=/etc/systemd/system/ollama.service.d/a.conf /etc/systemd/system/ollama.service.d/b.conf
StateChangeTimestamp=Tue 2026-12-01 18:23:42 UTC
ActiveEnterTimestamp=n/a
"""

# a crash loop's journal, in the shapes systemd, Ollama, Caddy and our gateway log in
FAILED_JOURNAL = (DATA / "journal-ollama-failing.txt").read_text()


def test_the_labs_five_units_are_loaded_and_active() -> None:
    units = parse_units.parse_show(LAB["units"]["stdout"])
    assert sorted(units) == [
        "caddy.service",
        "ollama-fleet-firewall.service",
        "ollama-fleet-gateway.service",
        "ollama-fleet-monitor.service",
        "ollama.service",
    ]
    assert all(u.installed and u.active for u in units.values())
    ollama = units["ollama.service"]
    assert ollama.since == dt.datetime(2026, 12, 1, 18, 23, 42, tzinfo=dt.UTC)
    assert ollama.restarts == 0 and ollama.main_status == 0
    assert ollama.environment["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert ollama.drop_ins == ("/etc/systemd/system/ollama.service.d/ollama-fleet.conf",)
    assert units["ollama-fleet-firewall.service"].sub_state == "exited"


def test_a_unit_that_does_not_exist_is_not_installed() -> None:
    unit = parse_units.parse_show(NOT_FOUND)["nosuch.service"]
    assert not unit.installed and not unit.active
    assert unit.since is None and unit.fragment == "" and unit.drop_ins == ()


def test_a_failed_unit_with_quoted_and_repeated_environment() -> None:
    unit = parse_units.parse_show(NOT_FOUND + "\n" + FAILED)["ollama.service"]
    assert unit.active_state == "failed" and unit.result == "exit-code"
    assert unit.restarts == 5 and unit.main_status == 1
    assert unit.since is None
    assert unit.environment == {"OLLAMA_ORIGINS": "a b", "OLLAMA_HOST": "127.0.0.1:11500"}
    assert len(unit.drop_ins) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue 2026-12-01 18:23:42 UTC", dt.datetime(2026, 12, 1, 18, 23, 42, tzinfo=dt.UTC)),
        ("2026-12-01 20:23:42 +0200", dt.datetime(2026, 12, 1, 18, 23, 42, tzinfo=dt.UTC)),
        ("@1796149422", dt.datetime(2026, 12, 1, 18, 23, 42, tzinfo=dt.UTC)),
        ("Tue 2026-12-01 19:23:42 CET", None),  # an abbreviation cannot be resolved
        ("", None),
        ("n/a", None),
        ("Tue 2026-13-45 18:23:42 UTC", None),
        ("@nonsense", None),
        ("@1e400", None),
    ],
)
def test_timestamps(text: str, expected: dt.datetime | None) -> None:
    assert parse_units.parse_timestamp(text) == expected


def test_the_error_lines_of_a_failing_unit() -> None:
    lines = parse_units.journal_lines(FAILED_JOURNAL)
    assert not any(line.startswith("--") for line in lines)
    errors = parse_units.error_lines(lines)
    assert [e.split(": ", 1)[1][:30] for e in errors] == [
        "/etc/systemd/system/ollama.ser",
        "Error: listen tcp 127.0.0.1:11",
        "time=2026-12-01T18:23:41Z leve",
        "ollama.service: Main process e",
        "ollama.service: Failed with re",
        '{"level":"error","ts":1.5,"log',
        "ERROR ollama_fleet.gateway.ser",
    ]
    assert "status=1/FAILURE" in errors[3]


def test_errors_keep_the_last_ten_each_cut_short() -> None:
    lines = tuple(f"2026-12-01T18:23:42+0000 lab x[1]: Error: {n} " + "y" * 400 for n in range(15))
    errors = parse_units.error_lines(lines)
    assert len(errors) == 10
    assert "Error: 5 " in errors[0]
    assert all(len(e) == 300 for e in errors)


def test_the_labs_journals_have_no_errors() -> None:
    for name in ("ollama.service", "caddy.service", "ollama-fleet-gateway.service"):
        lines = parse_units.journal_lines(LAB[f"journal:{name}"]["stdout"])
        assert lines
        assert parse_units.error_lines(lines) == ()


def test_an_empty_journal() -> None:
    assert parse_units.journal_lines("-- No entries --\n") == ()
    unit = parse_units.parse_show(NOT_FOUND)["nosuch.service"]
    assert parse_units.with_journal(unit, "").journal == ()


@pytest.mark.parametrize(
    "text",
    ["", "\x00\xff garbage", "Id=\n", "=x\n\n\n", "Id=a.service\nNRestarts=lots\nExecMainStatus="],
)
def test_garbage_gives_fewer_units_never_an_exception(text: str) -> None:
    units = parse_units.parse_show(text)
    assert all(u.restarts is None for u in units.values())
    assert set(units) <= {"a.service"}
