"""Deploy benchmark: the whole site on a fresh lab VM, then no-op re-deploys; wall times and ratios.

    .venv/bin/python benchmarks/deploy/bench_deploy.py [--repeat 3] [--keep]

Boots a fresh overlay of the lab image in a temporary state dir (the image is built first if it
is not cached: root, ~2.5 min), deploys the whole site once (`ollama-fleet deploy`, as a user
runs it), then re-deploys it --repeat times with nothing to change, and once with `--full`
(every role's operations, no host snapshot) as the reference for what the snapshot saves.
Prints each wall time, the ratio no-op/first, and whether the goal (a no-op re-deploy under
15 s) is met. The re-deploys skip the checks (`--checks changed` finds no changed host).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ollama_fleet.lab import LabOptions, down, up

GOAL_S = 15.0


def deploy(inventory: Path, workdir: Path, *extra: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "deploy",
            str(inventory),
            "-y",
            "--report",
            str(workdir / "checks.html"),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"deploy failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="no-op re-deploys to time")
    parser.add_argument("--keep", action="store_true", help="leave the VM running at the end")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    print(f"booting a fresh lab in {workdir / 'lab'} ...", flush=True)
    info = up(workdir / "lab", LabOptions(fresh=True), progress=lambda m: print(m, flush=True))
    try:
        first, out = deploy(info.inventory, workdir)
        changed = out.count("] changed ")
        print(f"first deploy:        {first:7.1f} s  ({changed} operations changed)", flush=True)
        noops = []
        for number in range(1, args.repeat + 1):
            elapsed, out = deploy(info.inventory, workdir)
            if "lab: no changes" not in out:
                sys.exit(f"re-deploy {number} changed something:\n{out[-3000:]}")
            noops.append(elapsed)
            print(f"no-op re-deploy {number}:   {elapsed:7.1f} s", flush=True)
        full, out = deploy(info.inventory, workdir, "--full")
        if "lab: no changes" not in out:
            sys.exit(f"the --full re-deploy changed something:\n{out[-3000:]}")
        print(f"no-op with --full:   {full:7.1f} s  (every operation, fact by fact)")
        median = statistics.median(noops)
        print(f"ratio no-op/first:   {median / first:.3f}  (median no-op {median:.1f} s)")
        print(f"ratio no-op/--full:  {median / full:.3f}  (the snapshot's saving)")
        verdict = "met" if median < GOAL_S else "NOT met"
        print(f"goal: no-op re-deploy under {GOAL_S:.0f} s: {verdict}")
    finally:
        if not args.keep:
            down(info.state_dir, destroy=True)


if __name__ == "__main__":
    main()
