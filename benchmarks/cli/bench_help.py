"""CLI start-up benchmark: `ollama-fleet --help` and two commands' --help against bare Python.

    .venv/bin/python benchmarks/cli/bench_help.py [--repeat 15]

Runs each command --repeat times as a fresh process (what a user waits for), takes the
median wall time, and prints it next to the reference in the same run: `python -c pass`
(the interpreter's own start-up) and `python -c "import click"` (the floor for a click
CLI). Prints the ratio to the reference and whether the goal (`--help` under 150 ms) is met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

GOAL_MS = 150.0

COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "ollama-fleet --help": [sys.executable, "-m", "ollama_fleet", "--help"],
    "ollama-fleet check --help": [sys.executable, "-m", "ollama_fleet", "check", "--help"],
    "ollama-fleet deploy --help": [sys.executable, "-m", "ollama_fleet", "deploy", "--help"],
}


def median_ms(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    median_ms(COMMANDS["ollama-fleet --help"], 2)  # warm the page cache and .pyc files
    results = {name: median_ms(argv, args.repeat) for name, argv in COMMANDS.items()}
    reference = results["python -c pass (reference)"]
    for name, ms in results.items():
        print(f"{name:32} {ms:7.1f} ms   ratio {ms / reference:5.2f}")
    help_ms = results["ollama-fleet --help"]
    verdict = "met" if help_ms < GOAL_MS else "NOT met"
    print(f"goal: ollama-fleet --help under {GOAL_MS:.0f} ms: {verdict} ({help_ms:.1f} ms)")
    return 0 if help_ms < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
