"""Fixtures: a real uvicorn server running the simulator (test double), and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import httpx
import ollama
import openai
import pytest

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

FAULTS_URL = "/_simulator/faults"


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """One simulator per test module, unpaced (tokens_per_second 0) to keep tests fast."""
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def _module_http(sim_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_url, timeout=10) as http:
        yield http


@pytest.fixture
def client(_module_http: httpx.Client) -> Iterator[httpx.Client]:
    """An httpx client for the module's simulator; faults are reset after each test."""
    yield _module_http
    _module_http.delete(FAULTS_URL).raise_for_status()


@pytest.fixture(scope="module")
def ollama_client(sim_url: str) -> Iterator[ollama.Client]:
    """The real `ollama` client, pointed at the module's simulator."""
    with closing(ollama.Client(host=sim_url)) as client:
        yield client


@pytest.fixture(scope="module")
def oai(sim_url: str) -> Iterator[openai.OpenAI]:
    """The real `openai` client, pointed at the module's simulator's /v1."""
    with openai.OpenAI(base_url=f"{sim_url}/v1", api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def fresh_url() -> Iterator[str]:
    """A simulator of its own, for tests that change the model list (pull, delete)."""
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"
