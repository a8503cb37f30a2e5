"""Diagnose benchmark: `ollama-fleet diagnose` of the lab VM against the manual way; wall times.

    .venv/bin/python benchmarks/diagnose/bench_diagnose.py [--lab STATE_DIR] [--repeat 3]

The manual way is benchmarks/diagnose/manual.sh: the same facts gathered as a person does,
with ssh, curl and openssl, one command after the other. Both run against the same deployed
lab in the same run, alternately, --repeat times each; the medians and their ratio are
printed with the goals (at least 10x faster than the manual way, under 10 s for one host).
Without --lab a fresh lab is booted and deployed first (minutes) and destroyed at the end;
with --lab STATE_DIR (e.g. ~/.cache/ollama-fleet/lab) a running, deployed lab is used as is.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ollama_fleet.lab import LabInfo, LabOptions, down, load_info, up
from ollama_fleet.lab.ssh import ssh_command
from ollama_fleet.lab.vault import lab_key, password_file

HERE = Path(__file__).parent
OLLAMA_FLEET = Path(sys.executable).with_name("ollama-fleet")
RATIO_GOAL = 10.0
WALL_GOAL_S = 10.0


def diagnose(lab: LabInfo, workdir: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(OLLAMA_FLEET), "diagnose", str(lab.inventory), "--vault-password-file",
         str(password_file(lab.state_dir)), "-o", str(workdir / "diagnose.json")],
        capture_output=True, text=True, cwd=workdir,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"diagnose found problems (exit {done.returncode}): {done.stdout[-3000:]}")
    return elapsed


def manual(lab: LabInfo) -> tuple[float, int]:
    ssh = ssh_command(lab)  # the lab's ssh options; manual.sh adds each command
    env = {
        **os.environ,
        "LAB_SSH": shlex.join(ssh),
        "URL": f"https://localhost:{lab.https_port}",
        "CA": str(lab.state_dir / "tls" / "ca.pem"),
        "KEY": lab_key(lab.state_dir),
        "CLOSED_PORT": str(lab.ollama_port),
    }
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(HERE / "manual.sh")], capture_output=True, text=True, env=env
    )
    elapsed = time.monotonic() - started
    return elapsed, done.stdout.count("--- rc ")


def deploy(lab: LabInfo, workdir: Path) -> None:
    done = subprocess.run(
        [str(OLLAMA_FLEET), "deploy", str(lab.inventory), "-y", "--vault-password-file",
         str(password_file(lab.state_dir)), "--report", str(workdir / "checks.html")],
        capture_output=True, text=True, cwd=workdir,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"deploy failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", type=Path, help="a running, deployed lab's state dir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-diagnose-"))
    fresh = args.lab is None
    if fresh:
        print(f"booting and deploying a fresh lab in {workdir / 'lab'} ...", flush=True)
        lab = up(workdir / "lab", LabOptions(fresh=True), progress=lambda m: print(m, flush=True))
        deploy(lab, workdir)
    else:
        found = load_info(args.lab.expanduser())
        if found is None:
            sys.exit(f"{args.lab}: no lab there (ollama-fleet lab up)")
        lab = found
    try:
        diagnose(lab, workdir)  # warm: the first SSH to a lab may wait on its DNS and caches
        ours, theirs = [], []
        for number in range(1, args.repeat + 1):
            mine = diagnose(lab, workdir)
            by_hand, commands = manual(lab)
            ours.append(mine)
            theirs.append(by_hand)
            print(
                f"run {number}: diagnose {mine:6.2f} s   manual ({commands} commands) "
                f"{by_hand:6.2f} s",
                flush=True,
            )
        median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
        ratio = median_theirs / median_ours
        print(f"median: diagnose {median_ours:.2f} s, manual {median_theirs:.2f} s")
        print(f"ratio manual/diagnose: {ratio:.1f}x")
        verdict = "met" if ratio >= RATIO_GOAL else "NOT met"
        print(f"goal: at least {RATIO_GOAL:.0f}x faster: {verdict}")
        print(
            f"goal: under {WALL_GOAL_S:.0f} s for one host: "
            f"{'met' if median_ours < WALL_GOAL_S else 'NOT met'}"
        )
    finally:
        if fresh:
            down(lab.state_dir, destroy=True)


if __name__ == "__main__":
    main()
