"""The lab's constants, importable without the lab's machinery (the CLI builds --help from them)."""

from __future__ import annotations

STATE_DIR_ENV = "OLLAMA_FLEET_LAB_DIR"
ACCELS = ("tcg", "kvm")
BOOT_TIMEOUT_S = 180.0
POWEROFF_TIMEOUT_S = 60.0
