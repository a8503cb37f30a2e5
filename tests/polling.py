"""Waiting in tests without sleeping as synchronisation: poll a condition up to a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    what: str, predicate: Callable[[], Any], *, timeout_s: float = 30.0, every_s: float = 0.05
) -> Any:
    """Poll until `predicate()` is truthy; its value. A clear failure naming `what` otherwise."""
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)
