"""Print the GPU collector's metric lines on this machine, for the issue note.

    .venv/bin/python benchmarks/monitor/gpu_probe.py [--scrapes 2]

Starts GpuCollector as the monitor does (`gpu: auto`, the real pynvml), scrapes it
--scrapes times one second apart (utilisation is a sample of the last period), and prints
the last scrape's exposition, then NVML's driver version when it loaded. Without a GPU it
prints `ollama_fleet_gpu_collector_up{reason="..."} 0.0` and says why; it never fails.
Exits 0 when the collector read at least one GPU, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from prometheus_client import CollectorRegistry, generate_latest

from ollama_fleet.monitor.gpu import GpuCollector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="# %(levelname)s %(name)s: %(message)s")
    collector = GpuCollector.start("auto")
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        text = ""
        for scrape in range(max(1, args.scrapes)):
            if scrape:
                time.sleep(1.0)
            text = generate_latest(registry).decode()
        sys.stdout.write(text)
        if collector.up:
            import pynvml

            print(f"# NVML driver {pynvml.nvmlSystemGetDriverVersion()}")
        else:
            print(f"# no GPU metrics here: reason {collector.reason}")
    finally:
        collector.close()
    return 0 if "ollama_fleet_gpu_memory_total_bytes" in text else 1


if __name__ == "__main__":
    sys.exit(main())
