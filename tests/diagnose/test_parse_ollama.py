"""Ollama's release on disk, its API on loopback, its models directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose import parse_ollama
from ollama_fleet.diagnose.facts import Unit
from ollama_fleet.diagnose.probe import Output

DATA = Path(__file__).parent.parent / "data" / "diagnose"
DEFAULT = "/usr/share/ollama/.ollama/models"
# curl's words on the lab VM for a port nothing listens on (rc 7)
REFUSED = (
    "curl: (7) Failed to connect to 127.0.0.1 port 11435 after 11 ms: Couldn't connect to server\n"
)


def lab() -> dict[str, Output]:
    raw = json.loads((DATA / "lab-healthy.json").read_text())
    return {key: Output(name=key, **value) for key, value in raw.items()}


def out(name: str, rc: int = 0, stdout: str = "", stderr: str = "") -> Output:
    return Output(name=name, rc=rc, stdout=stdout, stderr=stderr)


def ollama_unit(**environment: str) -> Unit:
    return Unit(
        name="ollama.service", load_state="loaded", active_state="active", environment=environment
    )


def test_the_labs_release_api_and_models() -> None:
    outputs = lab()
    assert parse_ollama.release(outputs["ollama_release"]) == "0.12.0-simulator"
    api, gaps = parse_ollama.api(
        url="http://127.0.0.1:11434",
        version=outputs["api_version"],
        tags=outputs["api_tags"],
        ps=outputs["api_ps"],
    )
    assert api.answered and api.version == "0.12.0-simulator" and api.error is None
    assert api.models == ("qwen2.5:0.5b", "llama3.2:1b")
    assert [(m.name, m.size, m.size_vram) for m in api.loaded] == [
        ("llama3.2:1b", 1321098329, 1321098329)
    ]
    assert gaps == {}


def test_without_a_release_file_the_binarys_path_is_not_a_version() -> None:
    installed_elsewhere = out("ollama_release", 0, "/usr/local/bin/ollama\n")
    assert parse_ollama.release(installed_elsewhere) is None
    assert parse_ollama.release(out("ollama_release", 1)) is None
    assert parse_ollama.release(None) is None


@pytest.mark.parametrize(
    ("environment", "url"),
    [
        ({}, "http://127.0.0.1:11434"),
        ({"OLLAMA_HOST": "127.0.0.1:11434"}, "http://127.0.0.1:11434"),
        ({"OLLAMA_HOST": "0.0.0.0"}, "http://127.0.0.1:11434"),
        ({"OLLAMA_HOST": ":11500"}, "http://127.0.0.1:11500"),
        ({"OLLAMA_HOST": "https://[::]:8443"}, "https://[::1]:8443"),
        ({"OLLAMA_HOST": "10.0.0.5"}, "http://10.0.0.5:11434"),
    ],
)
def test_the_url_is_read_as_the_probe_reads_it(environment: dict[str, str], url: str) -> None:
    assert parse_ollama.api_url(ollama_unit(**environment)) == url


def test_ollama_that_refuses() -> None:
    api, _ = parse_ollama.api(
        url="http://127.0.0.1:11434",
        version=out("api_version", 7, stderr=REFUSED),
        tags=out("api_tags", 7, stderr=REFUSED),
        ps=out("api_ps", 7, stderr=REFUSED),
    )
    assert not api.answered and api.models == ()
    assert api.error == REFUSED.strip()


@pytest.mark.parametrize(
    ("version", "error"),
    [
        (out("api_version", 0, "404 page not found"), "not Ollama's API: 404 page not found"),
        (out("api_version", 0, ""), "not Ollama's API: an empty answer"),
        (out("api_version", 0, '{"version": 12}'), 'not Ollama\'s API: {"version": 12}'),
        (
            out("api_version", 28, stderr="curl: (28) Operation timed out after 5000 ms\n"),
            "curl: (28) Operation timed out after 5000 ms",
        ),
        (out("api_version", 127, stderr="sh: 1: curl: not found"), "curl: not installed"),
        (None, "curl: not reported by the probe"),
    ],
)
def test_answers_that_are_not_ollamas(version: Output | None, error: str) -> None:
    api, _ = parse_ollama.api(url="u", version=version, tags=None, ps=None)
    assert not api.answered and api.error == error


def test_a_version_without_tags_or_ps_leaves_gaps() -> None:
    api, gaps = parse_ollama.api(
        url="u",
        version=out("api_version", 0, '{"version":"0.12.0"}'),
        tags=out("api_tags", 0, '{"models": "x"}'),
        ps=out("api_ps", 0, '{"models": [{"name": "a"}, 3, {"size": 1}]}'),
    )
    assert api.answered and api.models == ()
    assert [(m.name, m.size) for m in api.loaded] == [("a", 0)]
    assert set(gaps) == {"ollama_api.tags"}


def test_the_labs_models_dir() -> None:
    models, gap = parse_ollama.models_dir(lab(), default_path=DEFAULT)
    assert gap is None and models is not None
    assert models.exists and models.path == DEFAULT
    assert (models.owner, models.group, models.mode) == ("ollama", "ollama", "755")
    assert models.total_bytes == 8350298112 and models.free_bytes == 6763487232
    assert models.total_inodes == 524288 and models.free_inodes == 503304
    assert models.mount == "/"


def test_a_models_dir_that_does_not_exist() -> None:
    # what stat and df said on the lab VM for a missing path
    outputs = {
        "models_dir": out(
            "models_dir",
            1,
            "/srv/models\n",
            "stat: cannot statx '/srv/models': No such file or directory\n",
        ),
        "models_df": out("models_df", 1, stderr="df: /srv/models: No such file or directory\n"),
        "models_dfi": out("models_dfi", 1, stderr="df: /srv/models: No such file or directory\n"),
    }
    models, gap = parse_ollama.models_dir(outputs, default_path=DEFAULT)
    assert gap is None and models is not None
    assert models.path == "/srv/models" and not models.exists and models.owner is None


def test_a_models_dir_that_cannot_be_seen_is_a_gap() -> None:
    denied = out("models_dir", 1, "/root/m\n", "stat: cannot statx '/root/m': Permission denied\n")
    assert parse_ollama.models_dir({"models_dir": denied}, default_path=DEFAULT) == (
        None,
        "stat: permission denied (not root)",
    )
    assert parse_ollama.models_dir({}, default_path=DEFAULT) == (
        None,
        "stat: not reported by the probe",
    )


@pytest.mark.parametrize("text", ["", "\n\n", "x\ny\n", "x\na b c d\n", "\x00"])
def test_garbage_models_dir_never_raises(text: str) -> None:
    outputs = {
        "models_dir": out("models_dir", 0, text),
        "models_df": out("models_df", 0, text),
        "models_dfi": out("models_dfi", 0, "a\nb c d e - /"),
    }
    models, _ = parse_ollama.models_dir(outputs, default_path=DEFAULT)
    assert models is not None and models.owner is None and models.total_bytes is None
    assert models.free_inodes is None
