"""How to reach the lab's gateway from this machine: lines to copy, each working as printed."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from ollama_fleet.lab.inventory import CA_FILE, REQUIRED_MODELS, SITE_NAME
from ollama_fleet.lab.state import LabInfo, default_state_dir

CHAT = {"model": REQUIRED_MODELS[0], "messages": [{"role": "user", "content": "Hello!"}]}


def access_lines(info: LabInfo, *, command: str | Sequence[str], python: str) -> str:
    """The URL, the command that prints the key, the chat page, a curl and an openai line.

    `command` runs ollama-fleet: its words (an absolute path first), or one line of them
    split as the shell would; each word is quoted as printed. `python` is an interpreter
    with openai. The key only ever appears through `$(... lab key)`, never in this text.
    """
    url = f"https://{SITE_NAME}:{info.https_port}"
    q = shlex.quote
    state = info.state_dir.absolute()
    where = "" if state == default_state_dir().absolute() else f" --state-dir {q(str(state))}"
    words = shlex.split(command) if isinstance(command, str) else list(command)
    key = f"{shlex.join(words)} lab key{where}"
    ca = q(str(state / CA_FILE))
    body = json.dumps(CHAT)
    curl = (
        f'curl --cacert {ca} -H "Authorization: Bearer $({key})" '
        f"-H 'Content-Type: application/json' -d {q(body)} {url}/v1/chat/completions"
    )
    program = (
        "from openai import OpenAI; "
        f'print(OpenAI(base_url="{url}/v1").chat.completions.create('
        f'model="{CHAT["model"]}", messages={json.dumps(CHAT["messages"])})'
        ".choices[0].message.content)"
    )
    openai = f'OPENAI_API_KEY="$({key})" SSL_CERT_FILE={ca} {q(python)} -c {q(program)}'
    return "\n".join(
        [
            f"gateway:     {url} (Caddy's TLS, the lab's CA: {state / CA_FILE})",
            f"key:         {key}",
            f"chat page:   {url}/chat (paste the key; the lab's CA must be trusted by the browser)",
            f"curl:        {curl}",
            f"openai:      {openai}",
        ]
    )
