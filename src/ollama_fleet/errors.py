"""The exception tree: every error ollama-fleet raises on purpose derives from FleetError.

FleetError
 +-- ConfigError (ValueError)        bad inventory, option or URL; names the file and key
 +-- ToolMissingError (FileNotFoundError)  a system tool such as caddy is not installed
 +-- TestbedError (RuntimeError)      a local server (simulator, Caddy) failed to start

Only the CLI turns these into one-line messages and exit codes.
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error ollama-fleet raises on purpose."""


class ConfigError(FleetError, ValueError):
    """Invalid user input: an inventory, a URL or an option. The message says where."""


class ToolMissingError(FleetError, FileNotFoundError):
    """A required system tool is not installed."""


class TestbedError(FleetError, RuntimeError):
    """A local server of the testbed (simulator, Caddy) did not start or stop as expected."""

    __test__ = False  # not a pytest test class despite the name
