"""The pyinfra child gets the plan on stdin, and never the vault password in its environment."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from ollama_fleet import controller as deploy
from ollama_fleet.controller import child
from ollama_fleet.vault import NEW_PASSWORD_ENV, PASSWORD_ENV


class Stop(Exception):
    pass


def test_the_child_does_not_inherit_the_vault_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "correct horse battery staple")
    monkeypatch.setenv(NEW_PASSWORD_ENV, "another horse battery staple")
    monkeypatch.setenv("OLLAMA_FLEET_UNRELATED", "kept")
    seen: dict[str, Any] = {}

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(child.subprocess, "Popen", popen)
    with pytest.raises(Stop):
        deploy.run_runner({"hosts": []}, on_event=lambda event: None)
    assert PASSWORD_ENV not in seen["env"]
    assert NEW_PASSWORD_ENV not in seen["env"]
    assert seen["env"]["OLLAMA_FLEET_UNRELATED"] == "kept"
    assert seen["env"]["PYTHONUNBUFFERED"] == "1"
